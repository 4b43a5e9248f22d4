FROM a
RUN --mount=type=cache,target=/x,required echo
