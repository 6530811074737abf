SELECT * FROM process_creation WHERE Image LIKE '%/auditctl' ESCAPE '\' AND CommandLine REGEXP '-D'
