SELECT pid, parent, name, path, cmdline, uid, euid,
       ROUND(cpu_percent, 1) AS cpu_percent, resident_size
FROM processes
WHERE (cpu_percent >= 90 AND path IS NOT NULL)
   OR resident_size >= 8589934592
