FROM a
RUN --security=relaxed echo
