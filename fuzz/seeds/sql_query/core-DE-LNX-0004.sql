SELECT pid, parent, name, path, cmdline, uid, euid
FROM processes
WHERE (path IS NOT NULL OR parent NOT IN (0, 2))
  AND (name REGEXP '^(kworker|kthreadd|ksoftirqd|kswapd|kcompactd|khugepaged|kdevtmpfs|kblockd|kauditd|khungtaskd|kintegrityd|ksmd|kthrotld|oom_reaper|migration|watchdog|jbd2|rcu_|rcu[bco][a-z]*/|cpuhp/|idle_inject/|irq/|writeback)'
       OR cmdline REGEXP '^(\[|(kworker|kthreadd|ksoftirqd|kswapd|kdevtmpfs|khugepaged|migration|rcu_|jbd2)/)')
  AND NOT (name IN ('watchdog', 'watchdogd')
           AND COALESCE(path, '') IN ('/usr/sbin/watchdog', '/sbin/watchdog', '/usr/sbin/watchdogd', '/sbin/watchdogd'))
