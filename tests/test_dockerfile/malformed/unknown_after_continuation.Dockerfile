FROM a
RUN echo \
  x
BOGUS y
