FROM a
RUN --mount=type=nfs,target=/x echo
