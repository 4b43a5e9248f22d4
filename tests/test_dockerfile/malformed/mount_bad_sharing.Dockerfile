FROM a
RUN --mount=type=cache,target=/x,sharing=weird echo
