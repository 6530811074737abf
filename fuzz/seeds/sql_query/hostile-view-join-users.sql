SELECT pc.Image, pc.User, u.username FROM process_creation pc LEFT JOIN users u ON u.uid = 1000 WHERE pc.ParentImage LIKE '%sshd' ESCAPE '\'
