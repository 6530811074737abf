SELECT pid FROM processes; DELETE FROM processes
