SELECT * FROM process_creation WHERE Image LIKE '%/curl' ESCAPE '\'
