FROM a
RUN --mount=type=cache,target=/x,uid=-1 echo
