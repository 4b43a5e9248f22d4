FROM a AS x
RUN true
FROM b AS x
