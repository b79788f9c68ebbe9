//! Benchmark of `refcat serve`, measured in one run on this machine:
//! - warm views (tags, details, sbom, vulnerabilities): p50/p99 latency and requests/s
//!   at 64 connections, next to a direct registry manifest GET as the baseline
//!   (goals: p99 ≤ 5 ms and ≥ 10,000 requests/s per view);
//! - a cold tags view of a repository with 50 tags × 2 platforms: its time and registry
//!   requests, next to the same number of manifest GETs made one after another
//!   (goal: within 3× of that).
//!
//! The load generator shares the 2 cores with the server and the registry.
//! `just bench api` starts the registry and runs this:
//! `cargo run --release --example bench_api -- HOST ACCESS_LOG REPORT [SECONDS]`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use refcat::api::{router, AppState};
use refcat::publish::{PublishOptions, Publisher};
use refcat::reference::Target;
use refcat::registry::{Client, ClientConfig};
use refcat::scan::{Grype, Syft};
use refcat::sign::KeyPair;

const CONNECTIONS: usize = 64;

fn tools() -> PathBuf {
    std::env::var_os("REFCAT_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/refcat/tools")
        })
}

struct Load {
    p50_ms: f64,
    p99_ms: f64,
    per_second: f64,
    errors: usize,
}

/// `CONNECTIONS` clients asking for `url` as fast as they can for `seconds`.
async fn load(url: &str, seconds: f64) -> anyhow::Result<Load> {
    // The registry answers an OCI manifest only to a client that accepts one.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static(
            "application/vnd.oci.image.manifest.v1+json, application/json",
        ),
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .default_headers(headers)
        .build()?;
    // Warm the connections and the server's caches.
    for _ in 0..3 {
        http.get(url).send().await?.bytes().await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (http, url, stop) = (http.clone(), url.to_string(), stop.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match http.get(&url).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (l, e) = w.await?;
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    if all.is_empty() {
        bail!("no successful request to {url}");
    }
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Ok(Load {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        per_second: all.len() as f64 / elapsed,
        errors,
    })
}

/// A client configured as `refcat serve` configures its own.
fn serving_client(host: &str) -> Client {
    let mut config = ClientConfig::new(host);
    config.cache = Some(refcat::cache::CacheConfig::default());
    Client::new(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, _log, report] = &args[..3.min(args.len())] else {
        bail!("usage: bench_api HOST ACCESS_LOG REPORT [SECONDS]");
    };
    let seconds: f64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3.0);
    let client = Client::new(ClientConfig::new(host.clone()));
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
        KeyPair::generate(),
        PublishOptions::default(),
    );
    for (name, tag) in [("debian", "12"), ("alpine", "3.19")] {
        let image = refcat::fixture::build(&testdata.join(name))?;
        refcat::fixture::push(&client, &image).await?;
        publisher
            .publish(&format!("{host}/{}:{tag}", image.repository).parse()?)
            .await?;
    }

    // The cold repository: 50 tags, each a distinct index over the two Alpine platforms.
    let alpine = refcat::fixture::build(&testdata.join("alpine"))?;
    let mut cold = alpine.clone();
    cold.repository = "bench/cold".parse()?;
    refcat::fixture::push(&client, &cold).await?;
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
    let app = router(AppState::new(api_client.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut out = String::from("# refcat serve benchmark\n\n");
    out.push_str(&format!(
        "One run on this machine (2 cores shared by the load generator, the API and docker-registry 2.8). \
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
    for (name, url) in &views {
        let l = load(url, seconds).await.with_context(|| name.to_string())?;
        if !name.starts_with("registry") {
            met &= l.p99_ms <= 5.0 && l.per_second >= 10_000.0;
        }
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

    // Cold: one request for the tags view of 50 tags × 2 platforms, on a fresh server.
    let cold_client = serving_client(host);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let cold_base = format!("http://{}", listener.local_addr()?);
    let app = router(AppState::new(cold_client.clone()));
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
    if let Some(dir) = Path::new(report).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(report, &out)?;
    print!("{out}");
    Ok(())
}
