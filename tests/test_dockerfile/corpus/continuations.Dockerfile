FROM busybox
RUN echo one \
    two \
    three
RUN echo a \

    b
RUN echo c \
# a comment in the middle
    d \
    # indented comment
    e
RUN echo "quoted \
continued"
RUN echo trailing \   
    spaces
LABEL a=1 \
      b=2 \
      c="three four"
RUN echo escaped \\
RUN echo end
