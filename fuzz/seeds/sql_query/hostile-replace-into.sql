REPLACE INTO users VALUES (0, 'evil')
