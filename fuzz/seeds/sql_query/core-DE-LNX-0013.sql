SELECT pid, parent, name, path, cmdline, uid, euid
FROM processes
WHERE name REGEXP '(?i)^(ngrok|chisel|frpc|frps|iodine|iodined|dnscat|dnscat2|ligolo.*|gost|bore|rathole|revsocks|inlets|dns2tcpc|dns2tcpd|ptunnel|ptunnel-ng|icmpsh)$'
   OR (name = 'cloudflared' AND COALESCE(cmdline, '') REGEXP '(^|\s)tunnel(\s|$)')
   OR (cmdline IS NOT NULL
       AND cmdline REGEXP 'chisel|R:socks|ssh|socat'
       AND (cmdline REGEXP '(^|[\s/])chisel\s+(client|server)(\s|$)|(^|\s)R:socks(\s|$)'
            OR (cmdline REGEXP '(^|[\s/])(auto)?ssh\s'
                AND cmdline REGEXP '\s-[a-zA-Z]*R([^a-zA-Z]|$)|RemoteForward'
                AND cmdline REGEXP '\s-[a-zA-Z]*N[a-zA-Z]*([^a-zA-Z]|$)|SessionType[\s=]+none')
            OR (cmdline REGEXP '(^|[\s/])socat\s'
                AND cmdline REGEXP '(tcp|TCP|udp|UDP)[46]?-(l|L|listen|LISTEN):'
                AND cmdline REGEXP '(^|[\s,])[\x22\x27]?(tcp|TCP|udp|UDP|openssl|OPENSSL|ssl|SSL|socks4a?|SOCKS4A?|proxy|PROXY)[46]?(-connect|-CONNECT)?:[^\s:,]+:[0-9]+')))
