FROM a
HEALTHCHECK --retries=-1 CMD x
