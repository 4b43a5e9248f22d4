FROM a
RUN --mount=type=bind,target=/x,ro=maybe echo
