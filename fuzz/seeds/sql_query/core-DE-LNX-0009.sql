SELECT pid, parent, name, path, cmdline, uid, euid
FROM processes
WHERE cmdline IS NOT NULL
  AND cmdline REGEXP 'base64|Base64|BASE64|b64|decode64|openssl|unpack'
  AND (cmdline REGEXP '(base64(\s+-[a-zA-Z0-9]+)*\s+(-[a-zA-Z]*[dD][a-zA-Z]*|--decode)|openssl\s+(enc|base64)(\s[^;|]*)?\s-d(\s|$))[^;]*\|\s*(sudo\s+(-\S+\s+)*)?(\S*/)?(env\s+)?(sh|bash|dash|zsh|ksh|mksh|ash|python[0-9.]*|perl|ruby|php[0-9.]*|node)(\s*$|[;|&)\x22\x27\x60]|\s+([^-\s]|-[^cm\s]|-(\s|$)))'
       OR cmdline REGEXP '((^|[\s/;&|(\x22\x27\x60])(sh|bash|dash|zsh|ksh|ash)\s+(-[a-zA-Z]+\s+)*|(^|[\s;&|(\x22\x27\x60])eval\s+)[\x22\x27]?(\$\(|\x60)[^)\x60]*base64(\s+-[a-zA-Z0-9]+)*\s+(-[a-zA-Z]*[dD][a-zA-Z]*|--decode)'
       OR cmdline REGEXP '\{base64,(-d|--decode)\}'
       OR cmdline REGEXP 'base64(\s+-[a-zA-Z0-9]+)*\s+(-[a-zA-Z]*[dD][a-zA-Z]*|--decode)[^|;&]*>\s*\S+.*chmod\s+(\S*\+\S*x|0?[0-7]?[1357][0-7][0-7](\s|$))'
       OR (cmdline REGEXP '(^|[\s/\x22\x27\x60])(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*)\s.*(b64decode|base64_decode|decode_base64|[Dd]ecode64|unpack\(\s*[\x22\x27]m)'
           AND cmdline REGEXP '(exec|eval|system|popen|Popen|assert|spawn|passthru|shell_exec|proc_open|check_output|call|run)(\s*\(|\s)'))
