FROM a
COPY <<"EOF /dst
