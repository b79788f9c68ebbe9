// Command build-grype-db builds a schema-v6 Grype vulnerability database from the
// advisory records under -providers, using grype's own database builder, and prints
// the path of the archive that `grype db import` loads.
//
// Each provider directory holds one JSON file per advisory in the shape of the
// vunnel feeds grype's builder consumes; this program adds the workspace metadata
// around them (in a scratch copy, never in testdata/).
package main

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anchore/grype/grype/db"
	"github.com/anchore/grype/grype/db/provider"
	v6build "github.com/anchore/grype/grype/db/v6/build"
	_ "github.com/glebarez/go-sqlite"
)

// The feed schema each provider's records follow; grype picks its processor by it.
var schemas = map[string]string{
	"debian": "https://raw.githubusercontent.com/anchore/vunnel/main/schema/vulnerability/os/schema-1.0.0.json",
	"alpine": "https://raw.githubusercontent.com/anchore/vunnel/main/schema/vulnerability/os/schema-1.0.0.json",
	"github": "https://raw.githubusercontent.com/anchore/vunnel/main/schema/vulnerability/github-security-advisory/schema-1.0.1.json",
}

func main() {
	providers := flag.String("providers", "", "directory with one sub-directory of advisory records per provider")
	out := flag.String("out", "", "scratch directory for the workspace and the database")
	built := flag.String("built", "2026-11-01T00:00:00Z", "build timestamp (RFC 3339) recorded in the database")
	flag.Parse()
	if *providers == "" || *out == "" {
		fail("usage: build-grype-db -providers DIR -out DIR [-built RFC3339]")
	}
	buildTime, err := time.Parse(time.RFC3339, *built)
	if err != nil {
		fail("invalid -built: %v", err)
	}

	var states provider.States
	names := sortedDirs(*providers)
	for _, name := range names {
		state, err := writeWorkspace(filepath.Join(*providers, name), filepath.Join(*out, "input", name), name, buildTime)
		if err != nil {
			fail("provider %s: %v", name, err)
		}
		states = append(states, *state)
	}

	dbDir := filepath.Join(*out, "build")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		fail("%v", err)
	}
	err = db.Build(db.BuildConfig{
		SchemaVersion:       6,
		Directory:           dbDir,
		States:              states,
		Timestamp:           buildTime,
		IncludeCPEParts:     []string{"a", "o", "h"},
		InferNVDFixVersions: true,
		Hydrate:             true,
		BatchSize:           100,
	})
	if err != nil {
		fail("building the database: %v", err)
	}
	// grype stamps the build with the wall clock; the fixture wants the requested time,
	// so that two builds of the same sources describe the same database.
	if err := setBuildTime(filepath.Join(dbDir, "vulnerability.db"), buildTime); err != nil {
		fail("setting the build time: %v", err)
	}
	if err := v6build.CreateArchive(dbDir, "tar.gz", nil); err != nil {
		fail("archiving the database: %v", err)
	}
	archives, _ := filepath.Glob(filepath.Join(dbDir, "vulnerability-db_*.tar.gz"))
	if len(archives) != 1 {
		fail("expected one archive in %s, found %d", dbDir, len(archives))
	}
	fmt.Println(archives[0])
}

// writeWorkspace copies a provider's records into a vunnel-style workspace
// (results/, a sha256 listing and metadata.json) and reads it back as grype does.
func writeWorkspace(src, dst, name string, buildTime time.Time) (*provider.State, error) {
	schema, ok := schemas[name]
	if !ok {
		return nil, fmt.Errorf("unknown provider (known: debian, alpine, github)")
	}
	files, err := filepath.Glob(filepath.Join(src, "*.json"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no advisory records in %s", src)
	}
	sort.Strings(files)
	if err := os.MkdirAll(filepath.Join(dst, "results"), 0o755); err != nil {
		return nil, err
	}
	var listing strings.Builder
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var item json.RawMessage
		if err := json.Unmarshal(raw, &item); err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		id := strings.TrimSuffix(filepath.Base(f), ".json")
		envelope, err := json.Marshal(map[string]any{"schema": schema, "identifier": name + "/" + id, "item": item})
		if err != nil {
			return nil, err
		}
		rel := filepath.Join("results", filepath.Base(f))
		if err := os.WriteFile(filepath.Join(dst, rel), envelope, 0o644); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(envelope)
		fmt.Fprintf(&listing, "%s  %s\n", hex.EncodeToString(sum[:]), rel)
	}
	if err := os.WriteFile(filepath.Join(dst, "listing.sha256"), []byte(listing.String()), 0o644); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(listing.String()))
	metadata, err := json.Marshal(map[string]any{
		"provider":             name,
		"urls":                 []string{"file://testdata/grypedb/providers/" + name},
		"store":                "flat-file",
		"timestamp":            buildTime.Format(time.RFC3339),
		"version":              1,
		"distribution_version": 1,
		"processor":            "refcat-testdata",
		"listing":              map[string]string{"digest": hex.EncodeToString(sum[:]), "path": "listing.sha256", "algorithm": "sha256"},
		"schema":               map[string]string{"version": "1.0.3", "url": "https://raw.githubusercontent.com/anchore/vunnel/main/schema/provider-workspace-state/schema-1.0.3.json"},
		"stale":                false,
	})
	if err != nil {
		return nil, err
	}
	location := filepath.Join(dst, "metadata.json")
	if err := os.WriteFile(location, metadata, 0o644); err != nil {
		return nil, err
	}
	return provider.ReadState(location)
}

func setBuildTime(path string, built time.Time) error {
	conn, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := conn.Exec("UPDATE db_metadata SET build_timestamp = ?", built.UTC())
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("expected one db_metadata row, updated %d", n)
	}
	return nil
}

func sortedDirs(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		fail("%v", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "build-grype-db: "+format+"\n", args...)
	os.Exit(1)
}
