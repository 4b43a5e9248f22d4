FROM a
RUN --mount=type=tmpfs,target=/x,mode=0700 echo
