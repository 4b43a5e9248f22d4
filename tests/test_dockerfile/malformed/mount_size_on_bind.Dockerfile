FROM a
RUN --mount=target=/x,size=10m echo
