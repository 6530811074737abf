SELECT pid, parent, name, path, cmdline, uid, euid, on_disk
FROM processes
WHERE path LIKE '/tmp/%'
   OR path LIKE '/var/tmp/%'
   OR path LIKE '/dev/shm/%'
