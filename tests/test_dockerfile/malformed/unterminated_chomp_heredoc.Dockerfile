FROM a
COPY <<EOF /x
	body
  EOF
