FROM a AS a
FROM a
COPY --from=a --from=a x y
