SELECT sql FROM sqlite_master
