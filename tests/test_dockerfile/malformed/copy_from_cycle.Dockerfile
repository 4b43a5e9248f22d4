FROM a AS x
COPY --from=y /a /b
FROM b AS y
COPY --from=x /a /b
