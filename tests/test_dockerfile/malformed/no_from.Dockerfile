ARG x
ARG y
