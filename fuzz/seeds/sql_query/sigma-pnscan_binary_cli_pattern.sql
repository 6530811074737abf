SELECT * FROM process_creation WHERE CommandLine REGEXP '-(W|R)\s?(\s|"|'')([0-9a-fA-F]{2}\s?){2,20}(\s|"|'')'
