FROM a
RUN --mount=from=later,target=/x ls
FROM b AS later
