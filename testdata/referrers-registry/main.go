// Command referrers-registry serves go-containerregistry's OCI registry with its
// OCI 1.1 referrers API switched on (`crane registry serve` leaves it off). The tests
// use it as the registry that has the referrers API.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("address", "127.0.0.1:0", "listen address (loopback only in tests)")
	disk := flag.String("disk", "", "directory for blobs (default: memory)")
	flag.Parse()
	blobs := registry.NewInMemoryBlobHandler()
	if *disk != "" {
		blobs = registry.NewDiskBlobHandler(*disk)
	}
	handler := registry.New(registry.WithBlobHandler(blobs), registry.WithReferrersSupport(true), registry.Logger(log.New(nopWriter{}, "", 0)))
	server := &http.Server{Addr: *addr, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(server.ListenAndServe())
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
