

# leading blank lines

FROM a AS FirstStage
	RUN echo tab-indented
expose 8080
vOlUmE /v
entrypoint top -b
