FROM --platform=linux/arm64 alpine AS a
FROM --platform=$TARGETPLATFORM alpine AS b
COPY --link --parents --exclude=*.md --exclude=tmp/ src/ /dst/
COPY --chown=1000:1000 --chmod=644 a b /c/
COPY --chown="user name" x y
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/x.tar.gz /x
ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.10.1 /buildkit
ADD --unpack=false --link=false a.tar /a
RUN --network=none --security=sandbox echo hi
RUN --mount=type=secret,id=aws,target=/root/.aws/credentials,required=true aws s3 ls
RUN --mount=type=ssh,mode=0600 ssh -T git@github.com
RUN --mount=type=tmpfs,target=/tmp,size=64m ls
RUN --mount=type=cache,id=apt,target=/var/cache/apt,uid=0,gid=0,mode=0755 apt-get update
RUN --mount=type=secret,id=tok,env=TOKEN echo $TOKEN
RUN --mount=from=a,source=/x,target=/y cat /y
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=3 CMD curl -f http://localhost/ || exit 1
