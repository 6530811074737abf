WITH variants AS (
  SELECT name, COUNT(DISTINCT exe_sha256) AS hash_count
  FROM processes
  WHERE exe_sha256 IS NOT NULL AND name IS NOT NULL AND COALESCE(on_disk, -1) <> 0
  GROUP BY name
  HAVING COUNT(DISTINCT exe_sha256) > 1
)
SELECT p.pid AS pid, p.parent AS parent, p.name AS name, p.path AS path,
       p.exe_sha256 AS exe_sha256, p.cmdline AS cmdline, p.uid AS uid, p.euid AS euid,
       (SELECT v.hash_count FROM variants v WHERE v.name = p.name) AS hash_count,
       COUNT(*) OVER (PARTITION BY p.name, p.exe_sha256) AS same_hash_processes
FROM processes p
WHERE p.name IN (SELECT name FROM variants)
  AND p.exe_sha256 IS NOT NULL
  AND COALESCE(p.on_disk, -1) <> 0
ORDER BY p.name, p.exe_sha256
