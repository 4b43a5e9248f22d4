# check=skip=JSONArgsRecommended
# syntax=docker/dockerfile:1

# a regular comment
FROM busybox:latest@sha256:0000000000000000000000000000000000000000000000000000000000000000
MAINTAINER Jane Doe <jane@example.com>
USER 1000:1000
USER nobody
WORKDIR /a
WORKDIR b/c
WORKDIR $HOME/x
STOPSIGNAL SIGKILL
STOPSIGNAL 9
ONBUILD ADD . /app/src
ONBUILD RUN cd /app/src && make
onbuild copy --from=x a b
   RUN    echo   indented   
from busybox AS lower
run echo lower case
Run ["mixed"]
