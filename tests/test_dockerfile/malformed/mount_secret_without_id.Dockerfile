FROM a
RUN --mount=type=secret echo
