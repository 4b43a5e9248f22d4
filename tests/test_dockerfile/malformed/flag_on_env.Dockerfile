FROM a
ENV --x=1 a=b
