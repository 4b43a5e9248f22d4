FROM --plat=linux/amd64 a
