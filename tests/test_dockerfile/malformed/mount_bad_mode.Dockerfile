FROM a
RUN --mount=type=cache,target=/x,mode=999 echo
