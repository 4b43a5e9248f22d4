FROM a AS Build
FROM b as build
