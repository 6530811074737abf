VALUES (1, 'a'), (2, 'b') UNION ALL SELECT pid, name FROM processes ORDER BY 1 LIMIT 5 OFFSET 2
