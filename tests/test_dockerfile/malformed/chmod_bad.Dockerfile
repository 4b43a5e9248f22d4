FROM a
COPY --chmod=abc a b
