SELECT load_extension('/tmp/x.so')
