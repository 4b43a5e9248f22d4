FROM a
COPY --from=1 /a /b
FROM b
