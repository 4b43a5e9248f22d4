FROM a
COPY --checksum=sha256:00 a b
