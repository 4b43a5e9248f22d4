FROM a
HEALTHCHECK --timeout=soon CMD x
