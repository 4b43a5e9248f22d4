FROM a
HEALTHCHECK --interval=5 CMD x
