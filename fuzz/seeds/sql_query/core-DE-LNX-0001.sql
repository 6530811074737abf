SELECT pid, parent, name, path, cmdline, uid, euid, on_disk, exe_sha256
FROM processes
WHERE on_disk = 0
  AND path IS NOT NULL
