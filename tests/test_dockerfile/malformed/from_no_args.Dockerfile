# c

FROM
