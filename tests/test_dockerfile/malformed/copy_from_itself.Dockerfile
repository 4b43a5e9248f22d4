FROM a AS x
COPY --from=x /a /b
