module refcat.local/testdata/grypedb

go 1.26.8

require github.com/anchore/grype v0.121.2
