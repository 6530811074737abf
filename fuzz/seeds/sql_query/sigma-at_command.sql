SELECT * FROM process_creation WHERE Image LIKE '%/at' ESCAPE '\' OR Image LIKE '%/atd' ESCAPE '\'
