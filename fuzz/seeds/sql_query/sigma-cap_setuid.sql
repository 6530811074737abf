SELECT * FROM process_creation WHERE Image LIKE '%/setcap' ESCAPE '\' AND CommandLine LIKE '%cap\_setuid%' ESCAPE '\'
