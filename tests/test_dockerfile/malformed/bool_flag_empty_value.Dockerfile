FROM a
COPY --link= a b
