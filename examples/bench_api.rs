//! Benchmark of `refcat serve`, measured in one run on this machine:
//! - warm views (tags, details, sbom, vulnerabilities): p50/p99 latency and requests/s
//!   at 64 connections, next to a direct registry manifest GET as the baseline
//!   (goals: p99 ≤ 5 ms and ≥ 10,000 requests/s per view);
//! - a cold tags view of a repository with 50 tags × 2 platforms: its time and registry
//!   requests, next to the same number of manifest GETs made one after another
//!   (goal: within 3× of that);
//! - cold views behind a registry that answers every request late: how many round
//!   trips each waits for one after another.
//!
//! The load generator, wrk (one thread), shares the 2 cores with the server (one tokio
//! worker thread, so that the two do not preempt each other) and the registry.
//! `just bench api` starts the registry and runs this:
//! `cargo run --release --example bench_api -- HOST ACCESS_LOG REPORT [SECONDS]`.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use refcat::app::router;
use refcat::publish::{PublishOptions, Publisher};
use refcat::reference::Target;
use refcat::registry::{Client, ClientConfig};
use refcat::scan::{Grype, Syft};
use refcat::sign::KeyPair;
use refcat::web::AppState;
use support::tools;

const CONNECTIONS: usize = 64;

struct Load {
    p50_ms: f64,
    p99_ms: f64,
    per_second: f64,
    errors: u64,
}

/// `CONNECTIONS` connections asking for `url` as fast as they can for `seconds`, driven
/// by wrk: one C thread generates the load, leaving the rest of the CPU to the server.
fn load(url: &str, seconds: f64) -> anyhow::Result<Load> {
    // The registry answers an OCI manifest only to a client that accepts one.
    let accept = "Accept: application/vnd.oci.image.manifest.v1+json, application/json";
    let wrk = |duration: String| {
        std::process::Command::new("wrk")
            .args(["-t1", &format!("-c{CONNECTIONS}"), "--latency", "-d"])
            .arg(duration)
            .args(["-H", accept, url])
            .output()
            .context("running wrk (Debian: apt-get install wrk; `just tools` does it)")
    };
    wrk("1s".into())?; // warm the connections and the server's caches
    let out = wrk(format!("{seconds}s"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(str::trim))
            .with_context(|| format!("no {label:?} in wrk's output:\n{text}"))
    };
    let millis = |label: &str| -> anyhow::Result<f64> {
        let value = field(label)?;
        let (number, factor) = [("us", 0.001), ("ms", 1.0), ("s", 1000.0)]
            .into_iter()
            .find_map(|(unit, f)| value.strip_suffix(unit).map(|n| (n, f)))
            .with_context(|| format!("unknown unit in {value:?}"))?;
        Ok(number.parse::<f64>()? * factor)
    };
    let errors = field("Non-2xx or 3xx responses:").map_or(Ok(0), |n| n.parse())?;
    Ok(Load {
        p50_ms: millis("50%")?,
        p99_ms: millis("99%")?,
        per_second: field("Requests/sec:")?.parse()?,
        errors,
    })
}

/// The web catalog's pages next to the JSON views they are built from, in the same
/// run: warm throughput, latency and compressed weight. Goal: each page at ≥ 0.8× the
/// requests/s of its JSON view.
async fn pages(
    base: &str,
    seconds: f64,
    json: &std::collections::BTreeMap<&str, f64>,
) -> anyhow::Result<String> {
    let mut out = String::from(
        "## Web pages\n\nWarm, as above. Weight: the page's body as sent with `Accept-Encoding: gzip`.\n\n\
         | page | p50 ms | p99 ms | requests/s | JSON view | its requests/s | ratio | gzip bytes |\n|---|---|---|---|---|---|---|---|\n",
    );
    let pages = [
        (
            "tag page (debian:12)",
            "/images/fixtures/debian/tags/12",
            "vulnerabilities (debian:12)",
        ),
        (
            "tag page, packages searched (debian:12)",
            "/images/fixtures/debian/tags/12?package=lib",
            "sbom (debian:12)",
        ),
        (
            "repository page (alpine)",
            "/images/fixtures/alpine",
            "tags (alpine)",
        ),
    ];
    let http = reqwest::Client::new();
    let mut met = true;
    for (name, path, view) in pages {
        let url = format!("{base}{path}");
        let l = load(&url, seconds).with_context(|| name.to_string())?;
        let weight = http
            .get(&url)
            .header("accept-encoding", "gzip")
            .send()
            .await?
            .bytes()
            .await?
            .len();
        let theirs = json.get(view).copied().unwrap_or(f64::NAN);
        let ratio = l.per_second / theirs;
        met &= ratio >= 0.8;
        out.push_str(&format!(
            "| {name} | {:.2} | {:.2} | {:.0} | {view} | {theirs:.0} | {ratio:.2}× | {weight} |\n",
            l.p50_ms, l.p99_ms, l.per_second
        ));
        eprintln!("{name}: done");
    }
    out.push_str(&format!(
        "\nGoal (each page ≥ 0.8× its JSON view's requests/s): {}\n\n",
        if met { "met" } else { "NOT met" }
    ));
    Ok(out)
}

/// What each request to a slow registry waits before it is forwarded.
const LATENCY: Duration = Duration::from_millis(250);

/// Cold views of a fresh server whose registry answers every request `LATENCY` late,
/// checking signatures with `key`: how many round trips each view waits for one after
/// another (its time over `LATENCY`), next to how many requests it makes in all.
async fn slow_registry(host: &str, key: &KeyPair) -> anyhow::Result<String> {
    let slow = support::slow::start(host, LATENCY).await?;
    let mut out = format!(
        "\n## Cold views behind a slow registry\n\nEvery registry request waits {} ms before it is forwarded. \
         Each view is asked once of a fresh server that checks signatures (`--key`). \
         Round trips in sequence = the view's time / {} ms; the fewer beside the requests made, the more they overlap.\n\n\
         | view | seconds | round trips in sequence | registry requests |\n|---|---|---|---|\n",
        LATENCY.as_millis(),
        LATENCY.as_millis()
    );
    let views = [
        (
            "tags (alpine, 2 platforms)",
            "/v1/images/fixtures/alpine/tags",
        ),
        (
            "details (debian:12)",
            "/v1/images/fixtures/debian/details/12",
        ),
        ("sbom (debian:12)", "/v1/images/fixtures/debian/sbom/12"),
        (
            "vulnerabilities (alpine:3.19)",
            "/v1/images/fixtures/alpine/vulnerabilities/3.19",
        ),
        ("directory (3 repositories)", "/v1/images"),
    ];
    for (name, path) in views {
        let client = serving_client(&slow);
        let state = AppState::new(
            client.clone(),
            refcat::trust::Trust::checking(vec![key.public_key()], false).unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let app = router(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let start = Instant::now();
        let response = reqwest::get(format!("{base}{path}")).await?;
        if !response.status().is_success() {
            bail!("{name} behind a slow registry: HTTP {}", response.status());
        }
        response.bytes().await?;
        let seconds = start.elapsed().as_secs_f64();
        let requests: u64 = client.counter().snapshot().values().sum();
        out.push_str(&format!(
            "| {name} | {seconds:.2} | {:.1} | {requests} |\n",
            seconds / LATENCY.as_secs_f64()
        ));
        eprintln!("{name} behind a slow registry: done");
    }
    Ok(out)
}

/// A client configured as `refcat serve` configures its own.
fn serving_client(host: &str) -> Client {
    let mut config = ClientConfig::new(host);
    config.cache = Some(refcat::cache::CacheConfig::default());
    Client::new(config)
}

#[tokio::main(worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, _log, report] = &args[..3.min(args.len())] else {
        bail!("usage: bench_api HOST ACCESS_LOG REPORT [SECONDS]");
    };
    let seconds: f64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3.0);
    let client = Client::new(ClientConfig::new(host.clone()));
    let key = KeyPair::generate();
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/images");
    let publisher = Publisher::new(
        client.clone(),
        Syft {
            program: tools().join("bin/syft"),
            timeout: Duration::from_secs(600),
        },
        Grype {
            program: tools().join("bin/grype"),
            timeout: Duration::from_secs(600),
            db_cache_dir: Some(tools().join("grype-db")),
        },
        key.clone(),
        PublishOptions::default(),
    );
    for (name, tag) in [("debian", "12"), ("alpine", "3.19")] {
        let image = support::fixture::build(&testdata.join(name))?;
        support::fixture::push(&client, &image).await?;
        publisher
            .publish(&format!("{host}/{}:{tag}", image.repository).parse()?)
            .await?;
    }

    // The cold repository: 50 tags, each a distinct index over the two Alpine platforms.
    let alpine = support::fixture::build(&testdata.join("alpine"))?;
    let mut cold = alpine.clone();
    cold.repository = "bench/cold".parse()?;
    support::fixture::push(&client, &cold).await?;
    let mut index: serde_json::Value = serde_json::from_slice(&alpine.top.bytes)?;
    for i in 0..50 {
        index["annotations"] =
            serde_json::json!({ "org.opencontainers.image.version": format!("1.{i}") });
        let tag = Target::Tag(format!("1.{i}").parse()?);
        client
            .put_manifest(
                &cold.repository,
                &tag,
                &alpine.top.media_type,
                serde_json::to_vec(&index)?.into(),
            )
            .await?;
    }

    let api_client = serving_client(host);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = router(AppState::new(
        api_client.clone(),
        refcat::trust::Trust::show_unverified(),
    ));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut out = String::from("# refcat serve benchmark\n\n");
    out.push_str(&format!(
        "One run on this machine: 2 cores shared by the load generator (wrk, one thread), the API (one tokio worker thread) and docker-registry 2.8. \
         {CONNECTIONS} connections, {seconds} s per view, after a warm-up.\n\n\
         ## Warm views\n\n| view | p50 ms | p99 ms | requests/s | errors |\n|---|---|---|---|---|\n"
    ));
    let views = [
        (
            "registry: GET manifest (baseline)",
            format!("http://{host}/v2/fixtures/debian/manifests/12"),
        ),
        (
            "tags (alpine)",
            format!("{base}/v1/images/fixtures/alpine/tags"),
        ),
        (
            "details (debian:12)",
            format!("{base}/v1/images/fixtures/debian/details/12"),
        ),
        (
            "sbom (debian:12)",
            format!("{base}/v1/images/fixtures/debian/sbom/12"),
        ),
        (
            "vulnerabilities (debian:12)",
            format!("{base}/v1/images/fixtures/debian/vulnerabilities/12"),
        ),
    ];
    let mut met = true;
    let mut per_second = std::collections::BTreeMap::new();
    for (name, url) in &views {
        let l = load(url, seconds).with_context(|| name.to_string())?;
        if !name.starts_with("registry") {
            met &= l.p99_ms <= 5.0 && l.per_second >= 10_000.0;
        }
        per_second.insert(*name, l.per_second);
        out.push_str(&format!(
            "| {name} | {:.2} | {:.2} | {:.0} | {} |\n",
            l.p50_ms, l.p99_ms, l.per_second, l.errors
        ));
        eprintln!("{name}: done");
    }
    out.push_str(&format!(
        "\nGoals (p99 ≤ 5 ms and ≥ 10,000 requests/s for every view): {}\n\n",
        if met { "met" } else { "NOT met" }
    ));

    out.push_str(&pages(&base, seconds, &per_second).await?);

    // Cold: one request for the tags view of 50 tags × 2 platforms, on a fresh server.
    let cold_client = serving_client(host);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let cold_base = format!("http://{}", listener.local_addr()?);
    let app = router(AppState::new(
        cold_client.clone(),
        refcat::trust::Trust::show_unverified(),
    ));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let start = Instant::now();
    let response = reqwest::get(format!("{cold_base}/v1/images/bench/cold/tags")).await?;
    if !response.status().is_success() {
        bail!("cold tags view: HTTP {}", response.status());
    }
    let view: serde_json::Value = response.json().await?;
    let cold_time = start.elapsed().as_secs_f64();
    let requests: u64 = cold_client.counter().snapshot().values().sum();
    let tags = view["tags"].as_array().map_or(0, Vec::len);
    // The same number of registry requests, one after another.
    let direct = Client::new(ClientConfig::new(host.clone()));
    let start = Instant::now();
    for _ in 0..requests {
        direct
            .get_manifest(&cold.repository, &Target::Tag("1.0".parse()?))
            .await?;
    }
    let sequential = start.elapsed().as_secs_f64();
    let ratio = cold_time / sequential;
    out.push_str(&format!(
        "## Cold tags view\n\n{tags} tags (50 made for the benchmark, 2 from the fixture) × 2 platforms, fresh server: **{cold_time:.3} s** and {requests} registry requests.\n\
         The same number of manifest GETs one after another: {sequential:.3} s. Ratio **{ratio:.2}×** (goal ≤ 3×: {}).\n",
        if ratio <= 3.0 { "met" } else { "NOT met" }
    ));
    out.push_str(&slow_registry(host, &key).await?);
    if let Some(dir) = Path::new(report).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(report, &out)?;
    print!("{out}");
    Ok(())
}
