FROM a
RUN --mount=type=bind,target=/x,sharing=locked echo
