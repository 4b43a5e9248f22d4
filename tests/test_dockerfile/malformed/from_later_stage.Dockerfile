FROM y AS x
FROM a AS y
