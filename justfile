# refcat's tasks. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

tools_dir := env_var_or_default("REFCAT_TOOLS", env_var("HOME") / ".cache/refcat/tools")
export PATH := tools_dir / "bin" + ":" + env_var("PATH")
export GRYPE_DB_CACHE_DIR := tools_dir / "grype-db"
export GRYPE_DB_AUTO_UPDATE := "false"
export GRYPE_DB_VALIDATE_AGE := "false"
export GRYPE_CHECK_FOR_APP_UPDATE := "false"
export SYFT_CHECK_FOR_APP_UPDATE := "false"

# Pinned tool versions.
oras_version := "v1.3.3"
cosign_version := "v3.1.2"
# grype v0.116.0 requires syft v1.48.0, which the Go module proxy here does not serve;
# syft v1.51.0 is pinned for both the syft CLI and grype's build (see `tools`).
grype_version := "v0.116.0"
syft_version := "v1.51.0"
# zot, the registry with the OCI 1.1 referrers API, built with its events extension (HTTP
# and NATS sinks). Where the Go module proxy refuses zot's module path, `just tools` builds
# it from a source archive named by REFCAT_ZOT_SOURCE, checked against this sha256
# (a `git archive` of tag v2.1.20, top folder zot-2.1.20/).
zot_version := "v2.1.20"
zot_source_sha256 := "ba2b48925bd85707cfe3e2af0a9684b70dd80090c02fcac7cc5dc48e15eaef75"
# The broker worker replicas share jobs through (JetStream with KV); Debian's 2.9 lacks
# what async-nats's KV API needs.
nats_version := "v2.14.5"
# Distribution's own token server (contrib/token-server of distribution 2.8; it grants a
# user the repositories under their name and the catalog): the token service of the
# tests' token-auth registry. The modules it needs are pinned beside it.
token_server_version := "v2.8.3"
# From PyPI, into a virtualenv in the tools cache: checks the API against its OpenAPI document.
schemathesis_version := "4.32.5"
# From the npm registry, test-only (never shipped): the accessibility checker the browser
# tests run in every page.
axe_version := "4.11.0"
axe_sha256 := "39bed7d72308f6d620789c169d699bfd7e8da80f65b545821a6b2215c3e83107"

default:
    @just --list

# Install the pinned real tools into the version-keyed cache (skips what is there).
tools:
    #!/usr/bin/env bash
    set -euo pipefail
    T="{{tools_dir}}"
    mkdir -p "$T/bin"
    fail() { echo "just tools: $*" >&2; exit 1; }
    command -v go >/dev/null || fail "Go is not installed; install Go 1.26.8 or newer (see README prerequisites)"
    # The one-time builds below download modules and fill a build cache: several GB the
    # binaries kept in $T do not need. They go to a scratch directory, removed at exit
    # (`just grype-db`, called last, inherits it).
    scratch=$(mktemp -d)
    trap 'chmod -R u+w "$scratch"; rm -rf "$scratch"' EXIT
    export GOMODCACHE="$scratch/mod" GOCACHE="$scratch/build"
    # install NAME VERSION PACKAGE MODULE@VERSION...
    # A throwaway module that requires the given modules gives the same build as
    # `go install PACKAGE@VERSION`, without the module-list queries some proxies refuse,
    # and lets grype be built against the same syft as the syft CLI.
    install() {
        local name=$1 version=$2 package=$3
        shift 3
        local dir="$T/$name-$version"
        # The stamp says the binary was linked with its version (go install leaves it "[not provided]").
        if [ ! -x "$dir/$name" ] || [ ! -f "$dir/.version-stamped" ]; then
            echo "installing $name $version (go install $package, one-time, cached in $dir)" >&2
            mkdir -p "$dir/module"
            {
                printf 'module refcat.local/tools/%s\n\ngo %s\n\nrequire (\n' "$name" "$(go env GOVERSION | sed 's/^go//')"
                for req in "$@"; do printf '\t%s %s\n' "${req%@*}" "${req#*@}"; done
                printf ')\n'
            } > "$dir/module/go.mod"
            (cd "$dir/module" && GOFLAGS=-mod=mod GOBIN="$dir" go install -ldflags "-X main.version=${version#v}" "$package") \
                || fail "go install of $name $version failed: see the go output above"
            touch "$dir/.version-stamped"
        fi
        ln -sfn "$dir/$name" "$T/bin/$name"
    }
    # zot needs the jsonv2 experiment and no cgo, as its Makefile builds it.
    install_zot() {
        local dir="$T/zot-{{zot_version}}-events" v="{{zot_version}}"
        local ldflags="-X zotregistry.dev/zot/v2/pkg/buildinfo.ReleaseTag=$v -X zotregistry.dev/zot/v2/pkg/buildinfo.BinaryType=events"
        if [ ! -x "$dir/zot" ]; then
            mkdir -p "$dir"
            echo "installing zot $v with -tags events (one-time, cached in $dir)" >&2
            if CGO_ENABLED=0 GOEXPERIMENT=jsonv2 GOBIN="$dir" go install -tags events -trimpath -ldflags "$ldflags" \
                "zotregistry.dev/zot/v2/cmd/zot@$v" 2> "$scratch/zot-go-install.log"; then
                :
            elif [ -n "${REFCAT_ZOT_SOURCE:-}" ]; then
                echo "go install of zot was refused ($(tail -n 1 "$scratch/zot-go-install.log")); building from REFCAT_ZOT_SOURCE=$REFCAT_ZOT_SOURCE" >&2
                [ -f "$REFCAT_ZOT_SOURCE" ] || fail "REFCAT_ZOT_SOURCE=$REFCAT_ZOT_SOURCE is not a file"
                local sum
                sum=$(sha256sum "$REFCAT_ZOT_SOURCE" | cut -d' ' -f1)
                [ "$sum" = "{{zot_source_sha256}}" ] \
                    || fail "REFCAT_ZOT_SOURCE=$REFCAT_ZOT_SOURCE has sha256 $sum, not the pinned {{zot_source_sha256}} of zot $v's source"
                mkdir -p "$scratch/zot-src"
                tar xzf "$REFCAT_ZOT_SOURCE" -C "$scratch/zot-src" --strip-components 1
                (cd "$scratch/zot-src" && CGO_ENABLED=0 GOEXPERIMENT=jsonv2 GOFLAGS=-mod=mod \
                    go build -tags events -trimpath -ldflags "$ldflags" -o "$dir/zot" ./cmd/zot) \
                    || fail "building zot $v from $REFCAT_ZOT_SOURCE failed: see the go output above"
            else
                cat "$scratch/zot-go-install.log" >&2
                fail "zot $v could not be installed. Either let the Go module proxy serve zotregistry.dev/zot/v2 (go install failed, output above), or set REFCAT_ZOT_SOURCE to a .tar.gz of zot $v's source tree (sha256 {{zot_source_sha256}})"
            fi
        fi
        ln -sfn "$dir/zot" "$T/bin/zot"
    }
    install_zot
    install oras {{oras_version}} oras.land/oras/cmd/oras oras.land/oras@{{oras_version}}
    install cosign {{cosign_version}} github.com/sigstore/cosign/v3/cmd/cosign github.com/sigstore/cosign/v3@{{cosign_version}}
    install syft {{syft_version}} github.com/anchore/syft/cmd/syft github.com/anchore/syft@{{syft_version}}
    install grype {{grype_version}} github.com/anchore/grype/cmd/grype \
        github.com/anchore/grype@{{grype_version}} github.com/anchore/syft@{{syft_version}}
    install nats-server {{nats_version}} github.com/nats-io/nats-server/v2 github.com/nats-io/nats-server/v2@{{nats_version}}
    install token-server {{token_server_version}} github.com/docker/distribution/contrib/token-server \
        github.com/docker/distribution@{{token_server_version}}+incompatible \
        github.com/docker/libtrust@v0.0.0-20160708172513-aabc10ec26b7 github.com/gorilla/mux@v1.8.1 \
        github.com/sirupsen/logrus@v1.10.2 golang.org/x/crypto@v0.59.0
    st="$T/schemathesis-{{schemathesis_version}}"
    if [ ! -x "$st/venv/bin/schemathesis" ]; then
        echo "installing schemathesis {{schemathesis_version}} from PyPI into $st" >&2
        rm -rf "$st"
        python3 -m venv "$st/venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
        "$st/venv/bin/pip" install -q "schemathesis=={{schemathesis_version}}" \
            || fail "pip install schemathesis=={{schemathesis_version}} failed: see the pip output above"
    fi
    ln -sfn "$st/venv/bin/schemathesis" "$T/bin/schemathesis"
    axe="$T/axe-core-{{axe_version}}"
    if [ ! -f "$axe/axe.min.js" ]; then
        echo "fetching axe-core {{axe_version}} from the npm registry into $axe" >&2
        mkdir -p "$axe"
        curl -fsSL -o "$axe/axe-core.tgz" "https://registry.npmjs.org/axe-core/-/axe-core-{{axe_version}}.tgz" \
            || fail "downloading axe-core {{axe_version}} from registry.npmjs.org failed"
        echo "{{axe_sha256}}  $axe/axe-core.tgz" | sha256sum -c --quiet \
            || { rm -f "$axe/axe-core.tgz"; fail "axe-core {{axe_version}}: the tarball's sha256 is not the pinned one"; }
        tar -xzf "$axe/axe-core.tgz" -C "$axe" --strip-components=1 package/axe.min.js
    fi
    # From Debian: docker-registry 2.8 (the tag-schema registry of the tests), wrk (the
    # load generator of `just bench api`), and Chromium with its chromedriver (the web
    # catalog's browser tests).
    missing=()
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]} from Debian with apt" >&2
        if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
        $SUDO apt-get update -qq || fail "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null \
            || fail "apt-get install ${missing[*]} failed"
    fi
    just grype-db

# Build the Grype DB fixture from testdata/grypedb/ and import it (offline) into the tools cache.
grype-db built="2026-11-01T00:00:00Z":
    #!/usr/bin/env bash
    set -euo pipefail
    T="{{tools_dir}}"
    # The builder stays in the tools cache: the worker tests build a newer DB with it.
    builder="$T/build-grype-db-$(cat testdata/grypedb/*.go testdata/grypedb/go.* | sha256sum | cut -c1-12)"
    if [ ! -x "$builder/build-grype-db" ]; then
        mkdir -p "$builder"
        (cd testdata/grypedb && GOFLAGS=-mod=mod go build -o "$builder/build-grype-db" .)
    fi
    ln -sfn "$builder/build-grype-db" "$T/bin/build-grype-db"
    stamp="$T/grype-db/.source-$(cat testdata/grypedb/*.go testdata/grypedb/go.* $(find testdata/grypedb/providers -type f | sort) | sha256sum | cut -c1-16)-{{built}}"
    if [ -f "$stamp" ]; then exit 0; fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    archive=$("$T/bin/build-grype-db" -providers testdata/grypedb/providers -out "$work/db" -built "{{built}}")
    rm -rf "$T/grype-db"
    mkdir -p "$T/grype-db"
    "$T/bin/grype" db import "$archive" >&2
    "$T/bin/grype" db status >&2
    touch "$stamp"

# Push the deterministic sample images to REGISTRY (host:port).
fixtures registry: tools
    cargo run --quiet --example push_fixtures -- {{registry}}

# Run every test (unit and integration, against the real tools).
test: tools
    cargo fmt --check
    cargo clippy --all-targets --quiet -- -D warnings
    cargo test

# Benchmark WHAT (publish, api, worker or scale) in one run against the real tools; writes target/bench/WHAT.md.
# For scale, RUNS is the sizes in tags, comma-separated (default 100,1000,10000).
bench what="publish" runs="3": tools
    #!/usr/bin/env bash
    set -euo pipefail
    case "{{what}}" in publish|api|worker|scale) ;; *) echo "just bench: unknown benchmark '{{what}}' (known: publish, api, worker, scale)" >&2; exit 2;; esac
    cargo build --release --quiet --example bench_{{what}} --bin refcat
    if [ "{{what}}" = scale ]; then
        sizes="{{runs}}"; [ "$sizes" = 3 ] && sizes=100,1000,10000
        target/release/examples/bench_scale target/bench/scale.md "$sizes"
        echo "report: target/bench/scale.md (plot: target/bench/scale.svg)"
        exit 0
    fi
    data=$(mktemp -d)
    free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
    port=$(free_port)
    worker_port=$(free_port)
    printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' "$data/registry" "$port" > "$data/config.yml"
    if [ "{{what}}" = worker ]; then
        printf 'notifications:\n  endpoints:\n    - name: refcat\n      url: http://127.0.0.1:%s/events\n      headers:\n        Authorization: ["Bearer bench-webhook-secret"]\n      timeout: 5s\n      threshold: 3\n      backoff: 1s\n' "$worker_port" >> "$data/config.yml"
    fi
    docker-registry serve "$data/config.yml" > "$data/access.log" 2> "$data/registry.err" &
    pid=$!
    trap 'kill $pid 2>/dev/null; rm -rf "$data"' EXIT
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
    target/release/examples/bench_{{what}} "127.0.0.1:$port" "$data/access.log" target/bench/{{what}}.md {{runs}} "$worker_port"
    echo "report: target/bench/{{what}}.md"

# Start zot (zot-config.json), push the sample images, publish signed SBOM and scan referrers, serve the catalog and run the worker; print what to try (Ctrl-C stops it).
demo port="5000" api="8080": tools
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --quiet --bin refcat --example push_fixtures
    refcat="$PWD/target/debug/refcat"
    data=$(mktemp -d)
    host="127.0.0.1:{{port}}"
    # zot-config.json as it is, but for its storage (a fresh directory) and port; its
    # events sink sends every push to the worker started below.
    sed "s|/tmp/refcat-zot|$data/zot|; s|\"5000\"|\"{{port}}\"|" zot-config.json > "$data/zot-config.json"
    zot serve "$data/zot-config.json" > "$data/registry.log" 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null; rm -rf "$data"' EXIT
    for _ in $(seq 100); do curl -fs "http://$host/v2/" >/dev/null && break; sleep 0.1; done
    curl -fs "http://$host/v2/" >/dev/null || { cat "$data/registry.log" >&2; echo "just demo: zot did not start on $host (log above)" >&2; exit 1; }
    echo "== zot on $host (config: $data/zot-config.json); pushing the sample images"
    target/debug/examples/push_fixtures "$host"
    export COSIGN_PASSWORD=refcat-demo
    "$refcat" key generate --output-key-prefix "$data/cosign" 2>/dev/null
    echo
    echo "== refcat publish: syft + grype on every platform manifest, signed referrers"
    "$refcat" publish --key "$data/cosign.key" \
        "$host/fixtures/debian:12" "$host/fixtures/alpine:3.19" "$host/fixtures/app:1.0.0"
    echo
    echo "== refcat verify $host/fixtures/alpine:3.19"
    "$refcat" verify --key "$data/cosign.pub" "$host/fixtures/alpine:3.19"
    syft_artifact=$("$refcat" discover --format json --depth 1 "$host/fixtures/debian:12" \
        | python3 -c 'import json,sys; print(next(r["digest"] for r in json.load(sys.stdin)["referrers"] if r.get("annotations",{}).get("dev.refcat.format")=="syft-json"))')
    "$refcat" serve "$host" --listen "127.0.0.1:{{api}}" --key "$data/cosign.pub" \
        --aggregate-repository refcat/catalog 2>> "$data/api.log" &
    api_pid=$!
    trap 'kill $pid $api_pid 2>/dev/null; rm -rf "$data"' EXIT
    REFCAT_WEBHOOK_SECRET=refcat-demo-webhook-secret "$refcat" worker "$host" \
        --listen 127.0.0.1:8081 --key "$data/cosign.key" \
        --aggregate-repository refcat/catalog --keep 2 \
        > "$data/cves.jsonl" 2>> "$data/worker.log" &
    worker_pid=$!
    trap 'kill $pid $api_pid $worker_pid 2>/dev/null; rm -rf "$data"' EXIT
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:{{api}}/healthz" >/dev/null && curl -fs http://127.0.0.1:8081/healthz >/dev/null && break; sleep 0.1; done
    echo
    echo "== the web catalog on http://127.0.0.1:{{api}}/ and its API under /v1, showing each artifact's signature verdict (Swagger UI: http://127.0.0.1:{{api}}/v1/docs/)"
    echo "== refcat worker on http://127.0.0.1:8081: zot sends it every push (webhooks: /events, metrics: /metrics; log: $data/worker.log)"
    echo
    echo "Try, from this directory (the pinned oras and cosign are in {{tools_dir}}/bin):"
    echo "  export PATH=\"{{tools_dir}}/bin:\$PATH\" COSIGN_PASSWORD=refcat-demo"
    echo "  oras discover --plain-http --format tree $host/fixtures/debian:12"
    echo "  oras pull --plain-http -o /tmp/sbom $host/fixtures/debian@$syft_artifact"
    echo "  cosign verify --key $data/cosign.pub --insecure-ignore-tlog=true --allow-http-registry $host/fixtures/debian@$syft_artifact"
    echo "  target/debug/refcat verify --key $data/cosign.pub $host/fixtures/debian:12"
    echo "  target/debug/refcat discover --platform linux/arm64 $host/fixtures/alpine:3.19"
    echo "  curl -s http://$host/v2/_catalog"
    echo "  curl -s http://127.0.0.1:{{api}}/v1/images/fixtures/alpine/tags"
    echo "  curl -s http://127.0.0.1:{{api}}/v1/images/fixtures/debian/details/12"
    echo "  curl -s 'http://127.0.0.1:{{api}}/v1/images/fixtures/debian/sbom/12?name=lib'"
    echo "  curl -s 'http://127.0.0.1:{{api}}/v1/images/fixtures/debian/vulnerabilities/12?severity=high'"
    echo "  curl -s http://127.0.0.1:{{api}}/v1/openapi.json"
    echo "  push an image and watch zot's event get it its signed referrers:"
    echo "    oras copy --from-plain-http --to-plain-http $host/fixtures/debian:12 $host/mine/debian:12 && sleep 15 && oras discover --plain-http $host/mine/debian:12"
    echo "  curl -s http://127.0.0.1:8081/metrics | grep -E 'refcat_(worker|active_cves)'"
    echo "  tail -f $data/cves.jsonl    # one JSON line per active CVE per tag, every walk"
    echo "  the catalog aggregate the worker stores, signed, once its start-up walk is done:"
    echo "    cosign verify --key $data/cosign.pub --insecure-ignore-tlog=true --allow-http-registry $host/refcat/catalog:refcat-aggregate"
    echo "    curl -s http://127.0.0.1:{{api}}/v1/vulnerabilities | head -c 300    # \"source\": \"artifact\""
    echo
    echo "Serving until Ctrl-C."
    wait $pid $api_pid $worker_pid
