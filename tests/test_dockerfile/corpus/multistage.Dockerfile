ARG GO_VERSION=1.22
ARG ALPINE=3.19 OTHER
FROM golang:${GO_VERSION}-alpine AS builder
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod,sharing=locked \
    --mount=type=bind,source=.,target=/src,rw \
    go build -o /out/app ./cmd/app

FROM builder as tester
RUN go test ./...

FROM alpine:${ALPINE}
COPY --from=builder --chmod=0755 /out/app /usr/local/bin/app
COPY --from=0 /etc/passwd /etc/passwd
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["--help"]
