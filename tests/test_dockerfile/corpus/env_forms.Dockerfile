FROM scratch
ENV A=1
ENV B 2
ENV C three four five
ENV D="with space" E='single $quoted' F=no\ space
ENV G=
ENV H="" I=''
LABEL org.opencontainers.image.title="kiln" version=1.0
LABEL "com.example.quoted key"="value" multi="a\
b"
LABEL legacy label value
ARG X
ARG Y=default Z="quoted default" W=
ARG EMPTY=""
