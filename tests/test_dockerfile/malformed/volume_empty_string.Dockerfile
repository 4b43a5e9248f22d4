FROM a
VOLUME ["/a", " "]
