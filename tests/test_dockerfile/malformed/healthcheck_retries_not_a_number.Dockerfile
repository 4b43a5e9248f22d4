FROM a
HEALTHCHECK --retries=three CMD x
