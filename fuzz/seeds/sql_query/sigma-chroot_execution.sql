SELECT * FROM process_creation WHERE Image LIKE '%/sudo' ESCAPE '\' AND (CommandLine LIKE '% --chroot %' ESCAPE '\' OR CommandLine LIKE '%sudo -R %' ESCAPE '\')
