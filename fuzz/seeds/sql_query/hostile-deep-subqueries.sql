SELECT (SELECT (SELECT (SELECT (SELECT max(pid) FROM processes WHERE pid IN (SELECT parent FROM processes)))))
