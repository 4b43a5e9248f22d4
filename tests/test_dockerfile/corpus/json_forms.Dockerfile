FROM scratch
CMD ["/bin/sh", "-c", "echo hi"]
CMD [ "spaced" , "json" ]
CMD ["unicode \u00e9", "esc\"aped"]
CMD []
CMD [not json]
CMD ["unterminated"
ENTRYPOINT ["/entry"]
ENTRYPOINT exec form not
SHELL ["powershell", "-command"]
RUN ["echo", "exec"]
RUN [ "echo" ]
VOLUME ["/data"]
VOLUME /var/log /var/db
EXPOSE 80 443/tcp 53/udp 8000-8010
COPY ["a b", "c d", "/dst/"]
ADD ["src", "/dst"]
HEALTHCHECK CMD ["true"]
HEALTHCHECK NONE
