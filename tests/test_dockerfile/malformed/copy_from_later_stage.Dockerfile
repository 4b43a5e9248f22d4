FROM a AS x
COPY --from=y /a /b
FROM b AS y
