FROM a
RUN --mount=type=secret,id=a,from=b echo
