SELECT length(printf('%.*c', 2000000000, 'x'))
