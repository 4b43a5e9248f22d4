FROM a
COPY --form=b x y
