SELECT p.pid AS pid, p.parent AS parent, pp.name AS parent_name, p.name AS name,
       p.path AS path, p.cmdline AS cmdline, p.uid AS uid, p.euid AS euid,
       p.start_time AS start_time
FROM processes p
LEFT JOIN processes pp ON pp.pid = p.parent
WHERE (p.uid = 0 OR p.euid = 0)
  AND p.path IS NOT NULL
  AND (p.path LIKE '/tmp/%' OR p.path LIKE '/var/tmp/%' OR p.path LIKE '/dev/shm/%'
       OR p.path LIKE '/home/%' OR p.path LIKE '/run/user/%'
       OR (p.path LIKE '%/.%' AND p.path REGEXP '/\.(\.[^/]|[^./])'))
  AND (p.parent = 1 OR pp.pid IS NULL
       OR pp.name IN ('systemd', 'init', 'tini', 'dumb-init', 'catatonit'))
