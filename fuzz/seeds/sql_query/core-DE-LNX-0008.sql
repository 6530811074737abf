SELECT pid, parent, name, path, cmdline, uid, euid
FROM processes
WHERE cmdline IS NOT NULL
  AND cmdline REGEXP 'curl|wget'
  AND (cmdline REGEXP '(^|[\s/;&|(\x22\x27\x60])(curl|wget)\s[^;]*\|\s*(sudo\s+(-\S+\s+)*)?(\S*/)?(env\s+)?(sh|bash|dash|zsh|ksh|mksh|ash|python[0-9.]*|perl|ruby|php[0-9.]*|node)(\s*$|[;|&)\x22\x27\x60]|\s+([^-\s]|-[^cm\s]|-(\s|$)))'
       OR cmdline REGEXP '((^|[\s/;&|(\x22\x27\x60])(sh|bash|dash|zsh|ksh|ash|python[0-9.]*)|(^|[\s;&|(\x22\x27\x60])(eval|source|\.))\s+(-[a-zA-Z]+\s+)*[\x22\x27]?(\$\(|<\(|\x60)\s*(\S*/)?(curl|wget)\s')
