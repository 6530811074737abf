SELECT * FROM process_creation WHERE Image LIKE '/tmp/%' ESCAPE '\' AND (NOT COALESCE((Image LIKE '%/usr/bin/nextcloud' ESCAPE '\'), 0))
