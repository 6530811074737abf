SELECT * FROM main.processes
