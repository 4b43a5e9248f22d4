FROM a
RUN --mount=type=tmpfs,target=/x,size=lots echo
