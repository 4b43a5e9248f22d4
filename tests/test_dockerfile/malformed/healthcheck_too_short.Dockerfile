FROM a
HEALTHCHECK --start-period=10us CMD x
