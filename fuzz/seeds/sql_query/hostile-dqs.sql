SELECT "pid", "no_such" FROM processes
