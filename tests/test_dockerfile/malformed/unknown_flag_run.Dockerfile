FROM a
RUN --mnt=type=cache echo
