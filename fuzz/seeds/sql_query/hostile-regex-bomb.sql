SELECT pid FROM processes WHERE cmdline REGEXP '(a{1000}){1000}'
