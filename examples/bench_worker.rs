//! Benchmark of `refcat worker`, measured in one run on this machine against
//! docker-registry 2.8 sending notifications to the worker (the real binary):
//! - push to complete signed set, minus the time syft and grype took (median over
//!   the sample images pushed ROUNDS times into fresh repositories);
//! - re-scan after a Grype DB change (grype on the stored Syft JSON) versus a full
//!   re-scan of the same images with `refcat publish --force` (syft + grype + attach +
//!   sign); goal: ≥ 5× faster;
//! - promotion: each image copied with `oras copy` into another repository, from the
//!   copy to a complete signed set (the set reused, no scan) versus its push to a
//!   complete set (scanned); goal: ≥ 20× faster, with no syft or grype run;
//! - the worker's peak memory (VmHWM);
//! - replicas: K images pushed at once, published by 1, 2 and 3 worker replicas sharing
//!   one nats-server (JetStream): throughput, and duplicates and losses (goal: none).
//!
//! Jobs run one at a time (`--concurrency 1`) so that scanner time and wall time
//! compare. `just bench worker` starts the registry and runs this; by hand:
//! `cargo run --release --example bench_worker -- HOST ACCESS_LOG REPORT ROUNDS WORKER_PORT`.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use refcat::artifact::Format;
use refcat::catalog::platforms::platform_manifests;
use refcat::catalog::subjects::SubjectIndex;
use refcat::publish::Existing;
use refcat::reference::Reference;
use refcat::registry::{Client, ClientConfig};
use refcat::secret::Secret;
use refcat::sign::KeyPair;
use refcat::trust::{Candidates, Trust};
use support::{tool, tools};

const PASSWORD: &str = "bench";
const SECRET: &str = "bench-webhook-secret";
/// Where the worker keeps its catalog records, the subject index among them.
const AGGREGATE: &str = "bench/catalog";
const IMAGES: [(&str, &str); 3] = [("debian", "12"), ("alpine", "3.19"), ("lang", "1.0.0")];

struct Worker {
    child: Child,
    base: String,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0))
    }

    /// Peak resident memory in MiB, from /proc.
    fn peak_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM")?;
        Ok(kib / 1024.0)
    }
}

/// Whether every platform manifest of `reference` has a complete set from `db_built`.
async fn complete(
    client: &Client,
    own: &Trust,
    reference: &Reference,
    db_built: &str,
) -> anyhow::Result<bool> {
    for subject in platform_manifests(client, reference, None).await? {
        let digest = &subject.descriptor.digest;
        let formats = Format::ALL;
        let existing =
            Existing::owned(client, &reference.repository, digest, own, &formats, false).await?;
        if existing.missing(db_built).any() {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn until(
    what: &str,
    limit: Duration,
    mut done: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while !done().await? {
        if start.elapsed() > limit {
            bail!("{what}: not done after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, _log, report, rounds, port] = &args[..] else {
        bail!("usage: bench_worker HOST ACCESS_LOG REPORT ROUNDS WORKER_PORT");
    };
    let rounds: usize = rounds.parse()?;
    let client = Client::new(ClientConfig::new(host.clone()));
    let work = tempfile::tempdir()?;
    let key = work.path().join("bench.key");
    let pair = KeyPair::generate();
    std::fs::write(&key, pair.to_encrypted_pem(&Secret::new(PASSWORD))?)?;
    let own = Trust::own(pair.public_key());
    // The worker scans with its own copy of the fixture DB, which the re-scan replaces.
    let db = work.path().join("grype-db");
    run(Command::new("cp")
        .arg("-a")
        .arg(tools().join("grype-db"))
        .arg(&db))?;
    let refcat = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/refcat");
    let scanner_env = |cmd: &mut Command| {
        cmd.env("REFCAT_SYFT", tool("syft"))
            .env("REFCAT_GRYPE", tool("grype"))
            .env("GRYPE_DB_CACHE_DIR", &db)
            .env("COSIGN_PASSWORD", PASSWORD);
    };
    // The worker's log, at debug, beside the report: where its time went.
    if let Some(dir) = Path::new(report).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let worker_log = std::fs::File::create(Path::new(report).with_extension("worker.log"))?;
    let mut cmd = Command::new(&refcat);
    cmd.args([
        "worker",
        "-v",
        host,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .arg("--key")
    .arg(&key)
    .args([
        "--concurrency",
        "1",
        "--reconcile-interval",
        "0",
        "--db-check-interval",
        "1",
        "--aggregate-repository",
        AGGREGATE,
    ])
    .env("REFCAT_WEBHOOK_SECRET", SECRET)
    .stdout(Stdio::null())
    .stderr(worker_log);
    scanner_env(&mut cmd);
    let worker = Worker {
        child: cmd
            .spawn()
            .context("starting refcat worker (build it with --release)")?,
        base: format!("http://127.0.0.1:{port}"),
    };
    until("worker start", Duration::from_secs(20), async || {
        Ok(reqwest::get(format!("{}/healthz", worker.base))
            .await
            .is_ok())
    })
    .await?;
    let db_built = grype_db_built(&db)?;

    // Push to complete signed set, minus scanner time.
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/images");
    let mut rows = String::new();
    let (mut latencies, mut overheads) = (Vec::new(), Vec::new());
    let mut references = Vec::new();
    // From the moment the push ended: what the worker took, the push left out.
    let mut after_push = Vec::new();
    let mut platforms = 0;
    for round in 0..rounds {
        for (name, tag) in IMAGES {
            let mut image = support::fixture::build(&testdata.join(name))?;
            image.repository = format!("bench/r{round}/{name}").parse()?;
            let reference: Reference = format!("{host}/{}:{tag}", image.repository).parse()?;
            let scanned_before = worker.metric("refcat_worker_scanner_seconds_total").await?;
            // From the start of the push: platform manifests go first, and the worker
            // may start on them before the index is in.
            let pushed = Instant::now();
            support::fixture::push(&client, &image).await?;
            let in_registry = Instant::now();
            until(
                &reference.to_string(),
                Duration::from_secs(600),
                async || complete(&client, &own, &reference, &db_built).await,
            )
            .await?;
            let latency = pushed.elapsed().as_secs_f64();
            after_push.push(in_registry.elapsed().as_secs_f64());
            let scanned =
                worker.metric("refcat_worker_scanner_seconds_total").await? - scanned_before;
            latencies.push(latency);
            overheads.push(latency - scanned);
            rows.push_str(&format!(
                "| {reference} | {latency:.2} | {scanned:.2} | {:.2} |\n",
                latency - scanned
            ));
            platforms += platform_manifests(&client, &reference, None).await?.len();
            references.push(reference);
        }
    }
    let (promotion, promotion_rows) = promotion_section(
        host,
        &client,
        &own,
        &worker,
        &references,
        &after_push,
        &db_built,
    )
    .await?;
    let latency = median(&mut latencies);
    let overhead = median(&mut overheads);

    // Re-scan after a DB change: the fixture advisories plus one, built a week later.
    let sources = work.path().join("providers");
    run(Command::new("cp")
        .arg("-a")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/grypedb/providers"))
        .arg(&sources))?;
    std::fs::write(
        sources.join("alpine/CVE-2026-0001.json"),
        serde_json::json!({ "Vulnerability": {
            "Name": "CVE-2026-0001", "NamespaceName": "alpine:3.19", "Severity": "High",
            "Link": "https://security.alpinelinux.org/vuln/CVE-2026-0001",
            "Description": "A benchmark advisory.", "CVSS": [], "Metadata": {},
            "FixedIn": [{ "Name": "busybox", "NamespaceName": "alpine:3.19", "VersionFormat": "apk",
                "Version": "1.36.1-r16", "VendorAdvisory": { "NoAdvisory": false, "AdvisorySummary": [] } }]
        }})
        .to_string(),
    )?;
    let archive = run(Command::new(tool("build-grype-db"))
        .arg("-providers")
        .arg(&sources)
        .arg("-out")
        .arg(work.path().join("db-build"))
        .args(["-built", "2026-11-08T00:00:00Z"]))?;
    let grype_before = worker
        .metric("refcat_worker_artifacts_total{format=\"grype-json\"}")
        .await?;
    let syft_before = worker
        .metric("refcat_worker_artifacts_total{format=\"syft-json\"}")
        .await?;
    let built_before = worker
        .metric("refcat_worker_grype_db_built_seconds")
        .await?;
    run(Command::new(tool("grype"))
        .args(["db", "import", archive.trim()])
        .env("GRYPE_DB_CACHE_DIR", &db))?;
    let imported = Instant::now();
    // When the watcher (checking every second) sees the new DB: the re-scan proper
    // starts there.
    let mut noticed = None;
    let new_built = grype_db_built(&db)?;
    until("re-scan", Duration::from_secs(1200), async || {
        if noticed.is_none() {
            let built = worker
                .metric("refcat_worker_grype_db_built_seconds")
                .await?;
            if built == built_before {
                return Ok(false);
            }
            noticed = Some(Instant::now());
        }
        for reference in &references {
            if !complete(&client, &own, reference, &new_built).await? {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    let rescan = imported.elapsed().as_secs_f64();
    let after_notice = noticed
        .expect("complete only after the change was seen")
        .elapsed()
        .as_secs_f64();
    let grype_new = worker
        .metric("refcat_worker_artifacts_total{format=\"grype-json\"}")
        .await?
        - grype_before;
    let syft_new = worker
        .metric("refcat_worker_artifacts_total{format=\"syft-json\"}")
        .await?
        - syft_before;

    // The same images scanned in full: syft + grype + attach + sign.
    let full_start = Instant::now();
    let mut publish = Command::new(&refcat);
    publish.arg("publish").arg("--force").arg("--key").arg(&key);
    publish.args(references.iter().map(|r| r.to_string()));
    scanner_env(&mut publish);
    run(&mut publish)?;
    let full = full_start.elapsed().as_secs_f64();
    let peak = worker.peak_mib()?;
    drop(worker); // its port is the registry's notification endpoint, for the replicas
    let replicas = replicas_section(host, port, &refcat, &scanner_env).await?;
    let ratio = full / rescan;
    let ratio_after_notice = full / after_notice;

    let out = format!(
        "# refcat worker benchmark\n\n\
         One run on this machine (2 cores): docker-registry 2.8 notifying the worker (release build, \
         `--concurrency 1`), {rounds} rounds of the 3 sample images ({platforms} platform manifests).\n\n\
         ## Push to complete signed set\n\n\
         | image | push start → complete s | syft + grype s | the rest s |\n|---|---|---|---|\n{rows}\n\
         Median: **{latency:.2} s** push to complete signed set, of which **{overhead:.2} s** is not syft or grype \
         (event delivery, queueing, registry work, signing). Goal: the rest ≤ 2 s ({}).\n\
         The rest can come out below zero: grype runs while the SBOMs are being committed, so scanner time \
         and registry work overlap.\n\n\
         ## Re-scan after a Grype DB change\n\n\
         New DB imported → every image complete for it: **{rescan:.2} s** ({grype_new} Grype artifacts, {syft_new} Syft artifacts; \
         includes up to 1 s until the watcher's next check). From the moment the worker reported the new DB: **{after_notice:.2} s**.\n\
         The same images with `refcat publish --force` (syft + grype + attach + sign): **{full:.2} s**.\n\
         Ratio **{ratio:.1}×** faster from the import (goal ≥ 5×: {}); **{ratio_after_notice:.1}×** from the moment the worker saw it.\n\n\
         {promotion}\n\n{promotion_rows}\n\
         ## Memory\n\nWorker peak RSS (VmHWM) over the run: **{peak:.1} MiB**.\n\n{replicas}",
        if overhead <= 2.0 { "met" } else { "NOT met" },
        if ratio >= 5.0 { "met" } else { "NOT met" },
    );
    std::fs::write(report, &out)?;
    print!("{out}");
    Ok(())
}

/// Copies each of `references` (published; `scanned` is the time from the end of its push
/// to its complete set) into a repository of its own with `oras copy`, and times the end
/// of each copy to a complete signed set: the section's summary and its table.
async fn promotion_section(
    host: &str,
    client: &Client,
    own: &Trust,
    worker: &Worker,
    references: &[Reference],
    scanned: &[f64],
    db_built: &str,
) -> anyhow::Result<(String, String)> {
    // Reuse looks only where the stored subject index says: wait until it names every
    // published platform manifest.
    let index_repository = AGGREGATE.parse()?;
    let mut subjects = Vec::new();
    for reference in references {
        for platform in platform_manifests(client, reference, None).await? {
            subjects.push((reference.repository.clone(), platform.descriptor.digest));
        }
    }
    until("the subject index", Duration::from_secs(120), async || {
        let stored = SubjectIndex::stored(client, &index_repository, own).await?;
        let Some(index) = stored.and_then(|s| s.document.verified()) else {
            return Ok(false);
        };
        Ok(subjects
            .iter()
            .all(|(repository, digest)| index.get().holds(digest, repository)))
    })
    .await?;
    let made = async || {
        let mut n = 0.0;
        for format in ["syft-json", "spdx-json", "grype-json"] {
            let series = format!("refcat_worker_artifacts_total{{format=\"{format}\"}}");
            n += worker.metric(&series).await?;
        }
        Ok::<_, anyhow::Error>(n)
    };
    let made_before = made().await?;
    let (mut rows, mut times, mut ratios) = (String::new(), Vec::new(), Vec::new());
    for (reference, scan) in references.iter().zip(scanned) {
        let promoted: Reference = format!(
            "{host}/bench/promoted/{}:{}",
            reference.repository,
            reference.target.manifest_reference()
        )
        .parse()?;
        run(Command::new(tool("oras")).args([
            "copy",
            "--from-plain-http",
            "--to-plain-http",
            &reference.to_string(),
            &promoted.to_string(),
        ]))?;
        let copied = Instant::now();
        until(
            &promoted.to_string(),
            Duration::from_secs(600),
            async || complete(client, own, &promoted, db_built).await,
        )
        .await?;
        let took = copied.elapsed().as_secs_f64();
        rows.push_str(&format!(
            "| {promoted} | {took:.2} | {scan:.2} | {:.1} |\n",
            scan / took
        ));
        times.push(took);
        ratios.push(scan / took);
    }
    let made = made().await? - made_before;
    let reused = worker.metric("refcat_worker_reused_total").await?;
    let (took, ratio) = (median(&mut times), median(&mut ratios));
    let summary = format!(
        "## Promotion (`oras copy` into another repository)\n\n\
         Copy in the registry (`oras copy` ended) → complete signed set, median **{took:.2} s**; the same image's \
         push ended → complete set (scanned) over that, median **{ratio:.1}×** (goal ≥ 20×: {}). Artifacts made (syft or grype run) meanwhile: \
         **{made}**; artifacts copied instead: **{reused}**.",
        if ratio >= 20.0 && made == 0.0 { "met" } else { "NOT met" },
    );
    let table = format!(
        "| copy | copied → complete s | its push ended → complete s (scanned) | ratio |\n|---|---|---|---|\n{rows}"
    );
    Ok((summary, table))
}

/// The built time of the Grype DB in `db`, as grype reports it.
fn grype_db_built(db: &Path) -> anyhow::Result<String> {
    let status = run(Command::new(tool("grype"))
        .args(["db", "status", "-o", "json"])
        .env("GRYPE_DB_CACHE_DIR", db))?;
    let status: serde_json::Value = serde_json::from_str(&status)?;
    status["built"]
        .as_str()
        .map(str::to_string)
        .context("grype db status printed no built time")
}

/// Images each replica count publishes: copies of alpine (two platforms each).
const REPLICA_IMAGES: usize = 6;

/// K images pushed at once into fresh repositories, published by 1, 2 and 3 replicas on
/// one nats-server: the time until every platform manifest has its set, and how many
/// sets were duplicated or missing.
async fn replicas_section(
    host: &str,
    port: &str,
    refcat: &Path,
    scanner_env: &dyn Fn(&mut Command),
) -> anyhow::Result<String> {
    let client = Client::new(ClientConfig::new(host.to_string()));
    let alpine = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/images/alpine");
    let key = tempfile::tempdir()?;
    let pair = KeyPair::generate();
    std::fs::write(
        key.path().join("bench.key"),
        pair.to_encrypted_pem(&Secret::new(PASSWORD))?,
    )?;
    let own = Trust::own(pair.public_key());
    let mut rows = String::new();
    let mut first = None;
    for n in 1..=3usize {
        let store = tempfile::tempdir()?;
        let nats_port = free_port()?;
        let mut nats = Command::new(tool("nats-server"))
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &nats_port.to_string(),
                "-sd",
            ])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server (just tools installs it)")?;
        let url = format!("nats://127.0.0.1:{nats_port}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut workers = Vec::new();
        for i in 0..n {
            // The first listens where the registry sends its notifications; the broker
            // shares the jobs with the others.
            let listen = if i == 0 {
                port.to_string()
            } else {
                free_port()?.to_string()
            };
            let mut cmd = Command::new(refcat);
            cmd.args(["worker", host, "--listen", &format!("127.0.0.1:{listen}")])
                .arg("--key")
                .arg(key.path().join("bench.key"))
                .args([
                    "--concurrency",
                    "1",
                    "--reconcile-interval",
                    "0",
                    "--nats-url",
                    &url,
                ])
                .env("REFCAT_WEBHOOK_SECRET", SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            scanner_env(&mut cmd);
            let worker = Worker {
                child: cmd.spawn()?,
                base: format!("http://127.0.0.1:{listen}"),
            };
            until("replica start", Duration::from_secs(20), async || {
                Ok(reqwest::get(format!("{}/healthz", worker.base))
                    .await
                    .is_ok())
            })
            .await?;
            workers.push(worker);
        }
        let db_built = grype_db_built(&tools().join("grype-db"))?;
        let mut references = Vec::new();
        let pushed = Instant::now();
        let busy_before = cpu_busy_seconds()?;
        let mut pushes = Vec::new();
        for i in 0..REPLICA_IMAGES {
            let mut image = support::fixture::build(&alpine)?;
            image.repository = format!("bench/replicas{n}/alpine-{i}").parse()?;
            references.push(format!("{host}/{}:3.19", image.repository).parse::<Reference>()?);
            let client = client.clone();
            pushes.push(async move { support::fixture::push(&client, &image).await });
        }
        for push in futures_util::future::join_all(pushes).await {
            push?;
        }
        until("replicas", Duration::from_secs(1200), async || {
            for reference in &references {
                if !complete(&client, &own, reference, &db_built).await? {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await?;
        let seconds = pushed.elapsed().as_secs_f64();
        let cores_busy = (cpu_busy_seconds()? - busy_before) / seconds;
        let (mut platforms, mut duplicates, mut lost) = (0, 0, 0);
        for reference in &references {
            for subject in platform_manifests(&client, reference, None).await? {
                platforms += 1;
                let existing = Candidates::read(
                    &client,
                    &reference.repository,
                    &subject.descriptor.digest,
                    &Format::ALL,
                    &Trust::show_unverified(),
                )
                .await?;
                for sets in Format::ALL.map(|f| existing.of(f)) {
                    duplicates += sets.len().saturating_sub(1);
                    lost += usize::from(sets.is_empty());
                }
            }
        }
        let per_minute = platforms as f64 * 60.0 / seconds;
        let ratio = per_minute / *first.get_or_insert(per_minute);
        rows.push_str(&format!(
            "| {n} | {platforms} | {seconds:.1} | {per_minute:.1} | {ratio:.2}× | {cores_busy:.2} | {duplicates} | {lost} |\n"
        ));
        drop(workers);
        let _ = nats.kill();
        let _ = nats.wait();
    }
    Ok(format!(
        "## Replicas on one NATS broker\n\n\
         {REPLICA_IMAGES} copies of alpine pushed at once into fresh repositories; the registry notifies the \
         first replica, and the broker shares the jobs (`--concurrency 1` each).\n\n\
         | replicas | platform manifests | push start → all complete s | platform manifests/min | ratio to 1 | cores busy (of {cores}) | duplicated artifacts | missing artifacts |\n\
         |---|---|---|---|---|---|---|---|\n{rows}\n\
         Goal: no duplicate and none missing. Cores busy is the machine's CPU time (everything on it: \
         replicas, scanners, registry, broker) over the wall time. On this machine syft and grype are \
         CPU-bound, so more replicas share the same cores: the ratio says what sharing costs, not what \
         more machines would give.\n",
        cores = std::thread::available_parallelism().map_or(1, |n| n.get()),
    ))
}

/// CPU time the whole machine has spent busy since boot (every core, all but idle and
/// I/O wait), from /proc/stat.
fn cpu_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let jiffies: Vec<f64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .context("/proc/stat has no cpu line")?
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0))
        .collect();
    let idle = jiffies.get(3).copied().unwrap_or(0.0) + jiffies.get(4).copied().unwrap_or(0.0);
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((jiffies.iter().take(8).sum::<f64>() - idle) / ticks)
}

/// A port free at the time of asking.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
