SELECT pid, parent, name, path, cmdline, uid, euid
FROM processes
WHERE cmdline IS NOT NULL
  AND cmdline REGEXP '/dev/tcp/|/dev/udp/|/inet|nc |ncat|netcat|nc\.|socat|ocket|OCKET|ockopen|OCKOPEN|telnet|openssl|ztcp'
  AND (
        (cmdline REGEXP '/dev/(tcp|udp)/'
         AND NOT cmdline REGEXP '^(timeout\s+\S+\s+)?(\S*/)?(ba)?sh\s+-c\s+[\x22\x27]?((while|until)\s+(!\s*)?)?((echo|printf|true|:|cat\s*<\s*/dev/null)(\s+-n)?(\s+[^<>|;&\s]*)?\s*)?[<>]\s*/dev/(tcp|udp)/[^\s<>|;&()\x22\x27]+(\s*(2>&1|[12]?>\s*/dev/null))*\s*(;\s*do\s+(sleep\s+[0-9.]+|:|true)\s*;\s*done\s*)?[\x22\x27]?(\s*(2>&1|[12]?>\s*/dev/null))*\s*$')
     OR cmdline REGEXP '/inet[46]?/(tcp|udp)/|(^|[\s;&|(\x22\x27\x60])ztcp\s'
     OR (cmdline REGEXP '(^|[\s/;&|(\x22\x27\x60])(nc|ncat|netcat|nc\.traditional|nc\.openbsd)(\s[^|;&]*)?\s(-[a-zA-Z]*[ec]|--(sh-|lua-)?exec)(\s|=|$)|(mkfifo|mknod\s+\S+\s+p)\s.*\|\s*(\S*/)?(nc|ncat|netcat|telnet|socat|openssl)(\s|$)|(^|[\s/;&|(\x22\x27\x60])(sh|bash|dash|zsh|ksh|ash)\s+-i[^|;]*\|\s*(\S*/)?(nc|ncat|netcat|telnet|openssl)(\s|$)|(^|[\s/;&|(\x22\x27\x60])(nc|ncat|netcat|telnet|openssl\s+s_client)\s[^|;]*\|\s*(\S*/)?(sh|bash|dash|zsh|ksh|ash)(\s|$)'
         AND NOT cmdline REGEXP '(^|[\s/;&|(\x22\x27\x60])(nc|ncat|netcat|nc\.traditional|nc\.openbsd)(\s[^|;&]*)?\s(-[a-zA-Z]*l[a-zA-Z]*|--listen)(\s|$)')
     OR (cmdline REGEXP '(^|[\s/\x22\x27\x60])socat\s'
         AND cmdline REGEXP '(^|\s)[\x22\x27]?(exec|EXEC|system|SYSTEM):'
         AND cmdline REGEXP '(^|[\s,])[\x22\x27]?(tcp|TCP|udp|UDP|openssl|OPENSSL|ssl|SSL|sctp|SCTP)[46]?(-connect|-CONNECT)?:[^\s:,]+:[0-9]+'
         AND NOT cmdline REGEXP '(tcp|TCP|udp|UDP|openssl|OPENSSL|sctp|SCTP)[46]?-(l|L|listen|LISTEN):')
     OR (cmdline REGEXP '(^|[\s/\x22\x27\x60])(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*|lua[0-9.]*|node|nodejs)\s.*([Ss]ocket|SOCKET|fsockopen|FSOCKOPEN)'
         AND cmdline REGEXP 'connect|fsockopen|FSOCKOPEN|TCPSocket|PeerAddr'
         AND cmdline REGEXP 'dup2|pty\.spawn|subprocess|[Pp]open|proc_open|shell_exec|exec|system|spawn|child_process|/bin/(ba|da|z)?sh')
  )
