FROM a
RUN --network=bridge echo
