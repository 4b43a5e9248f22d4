FROM a
RUN --mount=type=cache,tgt=/x echo
