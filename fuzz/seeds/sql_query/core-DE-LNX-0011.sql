SELECT pid, parent, name, path, cmdline, uid, euid, suid
FROM processes
WHERE euid = 0
  AND uid <> 0
  AND path IS NOT NULL
  AND NOT path REGEXP '^/(usr/(s?bin|lib[^/]*)|s?bin|lib[^/]*|snap)/'
