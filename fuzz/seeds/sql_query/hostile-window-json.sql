SELECT name, json_group_array(pid) OVER (PARTITION BY name ORDER BY pid) AS pids, row_number() OVER () AS n FROM processes
