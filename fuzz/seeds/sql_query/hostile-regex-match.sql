SELECT regex_match(cmdline, '(\d+)\.(\d+)', 2) AS ip FROM processes WHERE cmdline REGEXP '/dev/tcp/'
