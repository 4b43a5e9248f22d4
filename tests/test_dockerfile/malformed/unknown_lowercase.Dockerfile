FROM a
foo bar
