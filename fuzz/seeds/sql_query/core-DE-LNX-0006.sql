SELECT p.pid AS pid, p.name AS name, p.path AS path, p.cmdline AS cmdline,
       p.uid AS uid, p.euid AS euid, p.parent AS parent_pid, pp.name AS parent_name, pp.path AS parent_path,
       pp.cmdline AS parent_cmdline
FROM processes p
JOIN processes pp ON pp.pid = p.parent
WHERE (p.name REGEXP '^(sh|bash|dash|zsh|ksh|mksh|ash|csh|tcsh|fish|busybox|python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*|lua[0-9.]*|nc|ncat|netcat|socat)$'
       OR p.path REGEXP '/(sh|bash|dash|zsh|ksh|mksh|ash|csh|tcsh|fish|busybox|python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*|lua[0-9.]*|nc|ncat|netcat|socat)$')
  AND (pp.name REGEXP '^(nginx|apache2?|httpd|httpd\.worker|lighttpd|caddy|php-fpm.*|php-cgi.*|tomcat.*|mysqld|mariadbd|postgres|postmaster|mongod|redis-server|smtpd|qmgr|exim4?|sendmail|dovecot)$'
       OR (pp.name = 'master' AND pp.path LIKE '%postfix%')
       OR (pp.name = 'java' AND pp.cmdline REGEXP '[Cc]atalina|[Jj]etty|[Tt]omcat'))
  AND NOT COALESCE(p.cmdline REGEXP '^(/usr)?(/bin/)?sh -c (exec )?(/usr(/local)?/s?bin/)?(sendmail|rotatelogs|cronolog|logger)( [^;&|$\x60<>()]*)?$', 0)
  AND NOT (pp.name IN ('postgres', 'postmaster') AND COALESCE(pp.cmdline, '') REGEXP '^postgres: .*(archiver|startup)')
