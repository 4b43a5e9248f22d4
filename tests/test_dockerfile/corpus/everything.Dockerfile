# syntax=docker/dockerfile:1
# escape=\
ARG BASE=alpine
FROM --platform=$BUILDPLATFORM ${BASE} AS build
RUN --mount=type=cache,target=/root/.cache \
    --mount=type=secret,id=tok \
    # a comment inside
    echo hi \

    there
FROM build AS final
COPY --from=build --chown="a b" <<EOF <<-"EOT" /dst
hello
EOF
	bye
	EOT
ENV a=b c="d e" f=g\ h
ENV legacy value with spaces
LABEL "x y"=z
HEALTHCHECK --interval=5s --retries=3 CMD ["curl","-f","x"]
HEALTHCHECK NONE
ONBUILD RUN echo onbuild
onbuild copy <<X /y
body
X
EXPOSE 80/tcp   443
VOLUME ["/a", "/b"]
VOLUME /c /d
SHELL ["/bin/sh","-c"]
CMD echo "x"
ENTRYPOINT ["a"]
USER me:grp
WORKDIR /app
STOPSIGNAL SIGTERM
MAINTAINER someone
RUN ["echo", "1"]
