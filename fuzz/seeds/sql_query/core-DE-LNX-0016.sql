SELECT pid, parent, name, path, cmdline, uid, euid
FROM processes
WHERE cmdline IS NOT NULL
  AND cmdline REGEXP 'nc |ncat|netcat|nc\.|socat|telnetd|bind|BIND'
  AND (
        (cmdline REGEXP '(^|[\s/;&|(\x22\x27\x60])(nc|ncat|netcat|nc\.traditional|nc\.openbsd)(\s[^|;&]*)?\s(-[a-zA-Z]*l[a-zA-Z]*|--listen)(\s|$)'
         AND cmdline REGEXP '(^|[\s/;&|(\x22\x27\x60])(nc|ncat|netcat|nc\.traditional|nc\.openbsd)(\s[^|;&]*)?\s(-[a-zA-Z]*[ec]|--(sh-|lua-)?exec)(\s|=|$)|\|\s*(\S*/)?(sh|bash|dash|zsh|ksh|ash)(\s|$)|(^|[\s/;&|(\x22\x27\x60])(sh|bash|dash|zsh|ksh|ash)(\s+-i)?(\s+2>&1)?\s*\|\s*(\S*/)?(nc|ncat|netcat)\s')
     OR (cmdline REGEXP '(^|[\s/\x22\x27\x60])socat\s'
         AND cmdline REGEXP '(tcp|TCP|udp|UDP|openssl|OPENSSL|sctp|SCTP)[46]?-(l|L|listen|LISTEN):'
         AND cmdline REGEXP '(^|\s)[\x22\x27]?(exec|EXEC|system|SYSTEM):')
     OR cmdline REGEXP '(^|[\s/\x22\x27\x60])telnetd\s([^|;&]*\s)?-l\s*(\S*/)?(sh|bash|dash|zsh|ash)(\s|$)'
     OR (cmdline REGEXP '(^|[\s/\x22\x27\x60])(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*)\s.*([Ss]ocket|SOCKET)'
         AND cmdline REGEXP 'bind|BIND'
         AND cmdline REGEXP 'listen|accept|LISTEN|ACCEPT'
         AND cmdline REGEXP 'dup2|pty\.spawn|subprocess|[Pp]open|proc_open|shell_exec|exec|system|/bin/(ba|da|z)?sh')
  )
