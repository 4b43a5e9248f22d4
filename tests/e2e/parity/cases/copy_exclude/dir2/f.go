dir2/f.go
