go test -run '^$' -bench . -benchmem ./dataplane/
