module refcat.local/testdata/grypedb

go 1.26.8

require (
	github.com/anchore/grype v0.116.0
	github.com/anchore/syft v1.51.0
)
