RUN echo
FROM a
