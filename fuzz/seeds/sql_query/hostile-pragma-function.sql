SELECT * FROM pragma_table_info('processes')
