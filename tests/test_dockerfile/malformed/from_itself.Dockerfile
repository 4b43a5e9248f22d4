FROM x AS x
