# c
ENV a=b
FROM a
