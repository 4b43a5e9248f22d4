# syntax=docker/dockerfile:1.7
FROM debian
RUN <<EOF
apt-get update
apt-get install -y curl
EOF
RUN <<-EOT bash
	set -e
		echo "tabs go"
	EOT
RUN python3 <<'PY' > /out.txt
print("$HOME is not expanded")
PY
COPY <<EOF1 <<EOF2 /etc/
one
EOF1
two
EOF2
RUN cat <<A && cat <<"B"
a $x
A
b $y
B
RUN 3<<FD3 cat /dev/fd/3
fd three
FD3
ADD <<EOF /x.txt
added
EOF
RUN <<EOF
line with trailing spaces   
  leading spaces
EOF
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
