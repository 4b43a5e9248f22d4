FROM a
FROM b
COPY --from=1 /a /b
