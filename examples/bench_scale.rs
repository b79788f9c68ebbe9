//! Benchmark of how refcat's cost grows with the registry: for each size (tags across
//! repositories, two platforms each) on docker-registry 2.8 and on zot, one run of
//! - `refcat backfill` of the unchanged registry (nothing to do): time, registry requests
//!   per platform manifest, peak RSS;
//! - one worker walk of it, the same figures;
//! - `refcat serve --aggregate-repository`: cold and warm directory, the first and a deep
//!   page of the largest repository's tags, `/v1/vulnerabilities` stored and one
//!   `/v1/vulnerabilities/{id}`; and a `serve` without it computing the aggregate live;
//! - the worker's stored-aggregate update after one image changes.
//!
//! Every platform manifest carries a complete, signed set made by `refcat backfill`
//! itself in `scale/r0`; its syft and grype are launchers that print what the real syft
//! and grype printed for the alpine sample once (the scanners' own output, replayed), so
//! a set costs what publishing costs, not what scanning costs. The other repositories
//! are copies of `scale/r0` made in the registry's storage (the same digests and signed
//! sets, as `oras copy -r` would give), with `scale/r0`'s signed summary under their
//! names; a second backfill folds them into the aggregate. A counting
//! proxy in front of the registry counts what each step asks. Writes the report
//! (Markdown) and a plot (SVG) beside it: `cargo run --release --example bench_scale -- REPORT [SIZES]`.

#[path = "support/mod.rs"]
mod support;

#[allow(dead_code)] // the benchmark counts; it injects no fault
#[path = "../tests/it/common/faults.rs"]
mod faults;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use refcat::reference::{RepositoryName, Target};
use refcat::registry::{Client, ClientConfig};
use support::tool;

const PASSWORD: &str = "bench";
const SECRET: &str = "bench-webhook-secret";
const STORED_IN: &str = "bench/catalog";
/// How long the live aggregate may take before serve gives up on it.
const LIVE_LIMIT: Duration = Duration::from_secs(60);

/// A registry the benchmark runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Distribution,
    Zot,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Distribution => "distribution 2.8",
            Kind::Zot => "zot",
        }
    }
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// Peak resident memory in MiB, from /proc.
    fn peak_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

/// The release build of refcat (`just bench` builds it).
fn refcat_binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/refcat")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts a registry of `kind` storing in `dir`; its host.
async fn start_registry(kind: Kind, dir: &Path) -> anyhow::Result<(Process, String)> {
    let port = free_port()?;
    let host = format!("127.0.0.1:{port}");
    let child = match kind {
        Kind::Distribution => {
            let config = dir.join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
                    dir.join("data").display()
                ),
            )?;
            Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("docker-registry (Debian: apt-get install docker-registry)")?
        }
        Kind::Zot => {
            let config = dir.join("zot.json");
            let document = serde_json::json!({
                "distSpecVersion": "1.1.1",
                "storage": { "rootDirectory": dir.join("data"), "gc": false },
                "http": { "address": "127.0.0.1", "port": port.to_string() },
                "log": { "level": "error" }
            });
            std::fs::write(&config, document.to_string())?;
            Command::new(tool("zot"))
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("zot (just tools builds it)")?
        }
    };
    let process = Process(child);
    for _ in 0..200 {
        if reqwest::get(format!("http://{host}/v2/")).await.is_ok() {
            return Ok((process, host));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{} did not start", kind.name())
}

/// The shape of one size: repositories × tags per repository.
fn shape(tags: usize) -> (usize, usize) {
    match tags {
        0..=100 => (10, tags.div_ceil(10)),
        101..=1000 => (20, tags.div_ceil(20)),
        _ => (100, tags.div_ceil(100)),
    }
}

/// Pushes `per_repository` distinct two-platform images to `scale/r0`: the alpine
/// sample's layers, each platform manifest annotated with its tag so that every one is
/// its own digest.
async fn push_images(client: &Client, per_repository: usize) -> anyhow::Result<()> {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut image = support::fixture::build(&testdata.join("images/alpine"))?;
    image.repository = "scale/r0".parse()?;
    // The blobs first: the tags' manifests name them.
    support::fixture::push(client, &image).await?;
    let image = &image;
    use futures_util::StreamExt as _;
    let pushed: Vec<anyhow::Result<()>> = futures_util::stream::iter(0..per_repository)
        .map(|t| async move {
            push_distinct(
                client,
                image,
                &image.repository,
                &format!("1.{t}"),
                &format!("0.{t}"),
            )
            .await
        })
        .buffer_unordered(16)
        .collect()
        .await;
    pushed.into_iter().collect()
}

/// Where a registry of `kind` keeps repository `name` under its data directory.
fn repository_dir(kind: Kind, data: &Path, name: &str) -> PathBuf {
    match kind {
        Kind::Distribution => data.join("docker/registry/v2/repositories").join(name),
        Kind::Zot => data.join(name),
    }
}

/// Copies `scale/r0`, images and refcat's sets, to `scale/r1` … in the registry's
/// storage, as `oras copy -r` would but without a request each: the copies hold the same
/// digests and the same signed sets. Files are hard links (none is written again),
/// except those a registry rewrites in place when the repository changes: zot's
/// `index.json` and distribution's tag links. Every registry reads its storage at each
/// request, so the copies are served at once.
fn clone_repositories(kind: Kind, data: &Path, repositories: usize) -> anyhow::Result<()> {
    let from = repository_dir(kind, data, "scale/r0");
    let rewritten = match kind {
        Kind::Zot => "index.json",
        Kind::Distribution => "_manifests/tags",
    };
    for r in 1..repositories {
        let to = repository_dir(kind, data, &format!("scale/r{r}"));
        run_cp(&["-al"], &from, &to)?;
        let own = to.join(rewritten);
        match kind {
            Kind::Zot => std::fs::remove_file(&own)?,
            Kind::Distribution => std::fs::remove_dir_all(&own)?,
        }
        run_cp(&["-a"], &from.join(rewritten), &own)?;
    }
    Ok(())
}

fn run_cp(args: &[&str], from: &Path, to: &Path) -> anyhow::Result<()> {
    let status = Command::new("cp").args(args).arg(from).arg(to).status()?;
    if !status.success() {
        bail!("cp {} {} failed", from.display(), to.display());
    }
    Ok(())
}

/// Stores each copy's signed summary: `scale/r0`'s, which refcat wrote and signed, with
/// the copy's name, signed through refcat's own publishing code. The copies hold the same
/// images and sets, so reading them all again would only say the same (and costs zot,
/// whose referrers API reads the repository's whole index per call, minutes per size).
async fn summarise_copies(client: &Client, keys: &Path, repositories: usize) -> anyhow::Result<()> {
    use refcat::catalog::summary::RepositorySummary;
    let pem = std::fs::read_to_string(keys.join("refcat.key"))?;
    let key =
        refcat::sign::KeyPair::from_encrypted_pem(&pem, &refcat::secret::Secret::new(PASSWORD))?;
    // It signs and stores; it never scans.
    let nowhere = PathBuf::from("/nonexistent");
    let timeout = Duration::from_secs(1);
    let publisher = refcat::publish::Publisher::new(
        client.clone(),
        refcat::scan::Syft {
            program: nowhere.clone(),
            timeout,
        },
        refcat::scan::Grype {
            program: nowhere,
            timeout,
            db_cache_dir: None,
        },
        key,
        refcat::publish::PublishOptions::default(),
    );
    let stored_in: RepositoryName = STORED_IN.parse()?;
    let summary = RepositorySummary::stored(
        client,
        &stored_in,
        &"scale/r0".parse()?,
        publisher.own_trust(),
    )
    .await?
    .and_then(|s| s.document.verified())
    .context("scale/r0 has no summary that verifies")?
    .get()
    .clone();
    for r in 1..repositories {
        let name: RepositoryName = format!("scale/r{r}").parse()?;
        let copy = RepositorySummary {
            repository: name.to_string(),
            ..summary.clone()
        };
        let document =
            refcat::publish::Signable::repository_summary(&copy, &refcat::artifact::now_rfc3339());
        publisher
            .replace_tagged(
                &stored_in,
                refcat::reference::summary_tag(&name),
                document,
                None::<&refcat::trust::Verified<RepositorySummary>>,
            )
            .await?;
    }
    Ok(())
}

/// Launchers that replay what the real syft and grype printed for one alpine platform:
/// `version` and `db` go to the real tools, a scan writes the stored output.
fn replaying_scanners(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let rootfs = testdata.join("images/alpine/rootfs-amd64");
    let (syft_json, spdx_json, grype_json) = (
        dir.join("out.syft.json"),
        dir.join("out.spdx.json"),
        dir.join("out.grype.json"),
    );
    let status = Command::new(tool("syft"))
        .arg("scan")
        .arg(format!("dir:{}", rootfs.display()))
        .args(["-q", "-o"])
        .arg(format!("syft-json={}", syft_json.display()))
        .arg("-o")
        .arg(format!("spdx-json={}", spdx_json.display()))
        .status()?;
    if !status.success() {
        bail!("syft failed on the alpine sample");
    }
    let out = Command::new(tool("grype"))
        .arg(format!("sbom:{}", syft_json.display()))
        .args(["-o", "json", "-q"])
        .output()?;
    if !out.status.success() {
        bail!("grype failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(&grype_json, &out.stdout)?;
    // refcat checks that syft scanned the platform manifest it asked for: the replay
    // names the one of each scan.
    let mut document: serde_json::Value = serde_json::from_slice(&std::fs::read(&syft_json)?)?;
    document["source"]["metadata"]["manifestDigest"] = "@DIGEST@".into();
    std::fs::write(&syft_json, serde_json::to_vec(&document)?)?;
    let syft = dir.join("syft");
    write_script(
        &syft,
        &format!(
            "#!/bin/sh\nif [ \"$1\" != scan ]; then exec '{real}' \"$@\"; fi\ndigest=\"${{2##*@}}\"\nfor a in \"$@\"; do case \"$a\" in syft-json=*) sed \"s/@DIGEST@/$digest/\" '{syft_json}' > \"${{a#syft-json=}}\";; spdx-json=*) cp '{spdx_json}' \"${{a#spdx-json=}}\";; esac; done\n",
            real = tool("syft").display(),
            syft_json = syft_json.display(),
            spdx_json = spdx_json.display(),
        ),
    )?;
    let grype = dir.join("grype");
    write_script(
        &grype,
        &format!(
            "#!/bin/sh\ncase \"$1\" in version|db) exec '{real}' \"$@\";; esac\ncat '{grype_json}'\n",
            real = tool("grype").display(),
            grype_json = grype_json.display(),
        ),
    )?;
    Ok((syft, grype))
}

fn write_script(path: &Path, script: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, script)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// `refcat` with the key, the replaying scanners and the Grype DB of the tools cache.
fn refcat(keys: &Path, scanners: &(PathBuf, PathBuf)) -> Command {
    let mut cmd = Command::new(refcat_binary());
    cmd.env("REFCAT_KEY", keys.join("refcat.key"))
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("REFCAT_SYFT", &scanners.0)
        .env("REFCAT_GRYPE", &scanners.1)
        .env("REFCAT_AGGREGATE_REPOSITORY", STORED_IN)
        .env("GRYPE_DB_CACHE_DIR", support::tools().join("grype-db"))
        .env("GRYPE_DB_AUTO_UPDATE", "false")
        .env("GRYPE_DB_VALIDATE_AGE", "false")
        .env(
            "RUST_LOG",
            "warn,refcat::worker=info,refcat::worker::aggregate=debug",
        );
    cmd
}

/// What one measured step cost.
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    seconds: f64,
    requests: usize,
    peak_mib: f64,
}

/// Every figure of one size on one registry.
#[derive(Debug, Default)]
struct Row {
    tags: usize,
    platform_manifests: usize,
    repositories: usize,
    build_seconds: f64,
    /// The backfill that folds the copies into the aggregate.
    settle: Cost,
    backfill: Cost,
    walk: Cost,
    directory_cold: Cost,
    directory_warm_ms: f64,
    tags_first: Cost,
    tags_deep: Cost,
    stored_aggregate: Cost,
    stored_aggregate_warm_ms: f64,
    vulnerability: Cost,
    live_aggregate: Cost,
    serve_peak_mib: f64,
    live_serve_peak_mib: f64,
    /// Whether serve gave up on the live aggregate at [`LIVE_LIMIT`].
    live_gave_up: bool,
    update: Cost,
}

/// Runs `refcat backfill` on `host`; its wall time and peak RSS (from wait4).
fn backfill(host: &str, keys: &Path, scanners: &(PathBuf, PathBuf)) -> anyhow::Result<(f64, f64)> {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(refcat(keys, scanners).get_program())
        .args(["backfill", host, "--concurrency", "16"])
        .envs(
            refcat(keys, scanners)
                .get_envs()
                .filter_map(|(k, v)| Some((k, v?))),
        )
        .output()?;
    let seconds = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("refcat backfill failed: {stderr}");
    }
    let kib: f64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("no peak RSS from /usr/bin/time")?;
    Ok((seconds, kib / 1024.0))
}

/// Waits until `path`'s text holds `needle`.
async fn logged(path: &Path, needle: &str, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while !std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains(needle)
    {
        if start.elapsed() > limit {
            bail!("no {needle:?} in {} after {limit:?}", path.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// GETs `url`; its time, and the registry requests the proxy saw meanwhile.
async fn timed(proxy: &faults::FaultProxy, url: &str) -> anyhow::Result<(Cost, serde_json::Value)> {
    let before = proxy.all_seen().len();
    let start = Instant::now();
    let response = reqwest::get(url).await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    let seconds = start.elapsed().as_secs_f64();
    if !status.is_success() {
        bail!("{url}: {status} {body}");
    }
    let requests = proxy.all_seen().len() - before;
    Ok((
        Cost {
            seconds,
            requests,
            peak_mib: 0.0,
        },
        body,
    ))
}

/// The median time of `n` warm GETs of `url`, in milliseconds.
async fn warm_ms(url: &str, n: usize) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let response = reqwest::get(url).await?;
        response.bytes().await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[n / 2])
}

/// Starts `refcat serve` on `host` with `args`; the process and its base URL.
async fn serve(host: &str, keys: &Path, args: &[&str]) -> anyhow::Result<(Process, String)> {
    let port = free_port()?;
    let child = Command::new(refcat_binary())
        .args(["serve", host, "--listen", &format!("127.0.0.1:{port}")])
        .arg("--key")
        .arg(keys.join("refcat.pub"))
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            return Ok((Process(child), base));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("refcat serve did not start")
}

/// Builds a registry of `kind` with `tags` tags and measures everything on it.
async fn measure(
    kind: Kind,
    tags: usize,
    keys: &Path,
    scanners: &(PathBuf, PathBuf),
) -> anyhow::Result<(Row, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let (registry, host) = start_registry(kind, dir.path()).await?;
    let (repositories, per_repository) = shape(tags);
    let mut row = Row {
        tags: repositories * per_repository,
        platform_manifests: repositories * per_repository * 2,
        repositories,
        ..Row::default()
    };
    eprintln!(
        "{}: {} tags in {repositories} repositories",
        kind.name(),
        row.tags
    );
    let client = Client::new(ClientConfig::new(host.clone()));
    let start = Instant::now();
    push_images(&client, per_repository).await?;
    // A job that fails (a registry's hiccup under this load) is left for the next run,
    // as the worker's queue retries it; the build fails only when three runs do.
    let mut attempts = 0;
    while let Err(e) = backfill(&host, keys, scanners) {
        attempts += 1;
        let first_line = e
            .to_string()
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join(" / ");
        eprintln!("  building: {first_line}");
        if attempts == 3 {
            return Err(e);
        }
    }
    let first = start.elapsed().as_secs_f64();
    clone_repositories(kind, &dir.path().join("data"), repositories)?;
    summarise_copies(&client, keys, repositories).await?;
    // A backfill then finds everything complete and folds the copies into the aggregate.
    let proxy = faults::FaultProxy::start(&host).await;
    let (seconds, peak_mib) = backfill(&proxy.host, keys, scanners)?;
    row.settle = Cost {
        seconds,
        requests: proxy.all_seen().len(),
        peak_mib,
    };
    row.build_seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "  built in {:.0} s: scale/r0 in {first:.0} s, the copies settled in {:.0} s",
        row.build_seconds, row.settle.seconds
    );

    // Unchanged: everything from here on goes through the counting proxy.
    let proxy = faults::FaultProxy::start(&host).await;
    let (seconds, peak_mib) = backfill(&proxy.host, keys, scanners)?;
    row.backfill = Cost {
        seconds,
        requests: proxy.all_seen().len(),
        peak_mib,
    };
    eprintln!(
        "  backfill: {:.1} s, {} requests",
        seconds, row.backfill.requests
    );

    // One worker walk, then the aggregate it stores; then one image changes.
    let port = free_port()?;
    let log = dir.path().join("worker.log");
    let before = proxy.all_seen().len();
    let start = Instant::now();
    let worker = Process(
        refcat(keys, scanners)
            .args([
                "worker",
                &proxy.host,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--reconcile-interval", "1h", "--concurrency", "4"])
            .env("REFCAT_WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?,
    );
    logged(&log, "reconcile walk done", Duration::from_secs(1800)).await?;
    row.walk = Cost {
        seconds: start.elapsed().as_secs_f64(),
        requests: proxy.all_seen().len() - before,
        peak_mib: worker.peak_mib(),
    };
    // Stored, or found unchanged: the worker is done with the walk either way.
    logged(&log, "the catalog aggregate", Duration::from_secs(1800)).await?;
    eprintln!(
        "  worker walk: {:.1} s, {} requests",
        row.walk.seconds, row.walk.requests
    );

    // The serving views, on the stored aggregate and summaries.
    let (served, base) = serve(&proxy.host, keys, &["--aggregate-repository", STORED_IN]).await?;
    let (cost, _) = timed(&proxy, &format!("{base}/v1/images")).await?;
    row.directory_cold = cost;
    row.directory_warm_ms = warm_ms(&format!("{base}/v1/images"), 21).await?;
    let largest = "scale/r0";
    // The first page holds 100 tags (the acceptance's measure); the deep page is the
    // last of 20.
    let (cost, first) = timed(
        &proxy,
        &format!("{base}/v1/images/{largest}/tags?per_page=100"),
    )
    .await?;
    row.tags_first = cost;
    let per_page = 20;
    let deep = per_repository.div_ceil(per_page).max(1);
    let (cost, _) = timed(
        &proxy,
        &format!("{base}/v1/images/{largest}/tags?per_page={per_page}&page={deep}"),
    )
    .await?;
    row.tags_deep = cost;
    if first["tags"].as_array().map_or(0, Vec::len) == 0 {
        bail!("the tags page is empty: {first}");
    }
    let (cost, aggregate) = timed(&proxy, &format!("{base}/v1/vulnerabilities")).await?;
    row.stored_aggregate = cost;
    if aggregate["source"] != "artifact" {
        bail!("the stored aggregate was not used: {aggregate}");
    }
    row.stored_aggregate_warm_ms = warm_ms(&format!("{base}/v1/vulnerabilities"), 21).await?;
    let id = aggregate["vulnerabilities"][0]["id"]
        .as_str()
        .unwrap_or("CVE-0000-0000");
    let (cost, _) = timed(&proxy, &format!("{base}/v1/vulnerabilities/{id}")).await?;
    row.vulnerability = cost;
    row.serve_peak_mib = served.peak_mib();
    drop(served);

    // The same aggregate computed live by a serve that has no stored one, given
    // LIVE_LIMIT where views get 30 s (the point is what it costs); past that it answers
    // 503, and the report says so.
    let limit = format!("{}s", LIVE_LIMIT.as_secs());
    let (live, base) = serve(&proxy.host, keys, &["--request-timeout", &limit]).await?;
    let before = proxy.all_seen().len();
    let start = Instant::now();
    let status = reqwest::get(format!("{base}/v1/vulnerabilities"))
        .await?
        .status();
    row.live_aggregate = Cost {
        seconds: start.elapsed().as_secs_f64(),
        requests: proxy.all_seen().len() - before,
        peak_mib: 0.0,
    };
    row.live_gave_up = status == reqwest::StatusCode::SERVICE_UNAVAILABLE;
    if !status.is_success() && !row.live_gave_up {
        bail!("the live aggregate answered {status}");
    }
    row.live_serve_peak_mib = live.peak_mib();
    drop(live);

    // One image changes: a new tag in r0, announced to the worker as a registry would.
    // Stored or found unchanged: the worker has folded the change either way.
    let aggregated = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("the catalog aggregate")
            .count()
    };
    let stored_before = aggregated(&log);
    push_one(&client).await?;
    let top = client
        .head_manifest(&largest.parse()?, &Target::Tag("new".parse()?))
        .await?
        .context("the new tag")?;
    let event = serde_json::json!({ "events": [{ "id": "bench", "action": "push", "target": {
        "mediaType": top.media_type, "digest": top.digest.to_string(), "repository": largest, "tag": "new" } }] });
    let before = proxy.all_seen().len();
    let start = Instant::now();
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/events"))
        .bearer_auth(SECRET)
        .header(
            "content-type",
            "application/vnd.docker.distribution.events.v1+json",
        )
        .body(event.to_string())
        .send()
        .await?;
    if !answer.status().is_success() {
        bail!("the worker refused the event: {}", answer.status());
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while aggregated(&log) <= stored_before {
        if Instant::now() > deadline {
            bail!("no aggregate stored after the change");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    row.update = Cost {
        seconds: start.elapsed().as_secs_f64(),
        requests: proxy.all_seen().len() - before,
        peak_mib: worker.peak_mib(),
    };
    drop(worker);
    drop(registry);
    Ok((row, dir))
}

/// Pushes one more distinct image to `scale/r0` as `new`.
async fn push_one(client: &Client) -> anyhow::Result<()> {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let image = support::fixture::build(&testdata.join("images/alpine"))?;
    push_distinct(client, &image, &"scale/r0".parse()?, "new", "new").await
}

/// Pushes `image` (its blobs already in `repository`) as `tag`, each platform manifest
/// annotated with `label` so that it is a digest of its own.
async fn push_distinct(
    client: &Client,
    image: &support::fixture::BuiltImage,
    repository: &RepositoryName,
    tag: &str,
    label: &str,
) -> anyhow::Result<()> {
    let mut index: serde_json::Value = serde_json::from_slice(&image.top.bytes)?;
    for (i, platform) in image.platform_manifests.iter().enumerate() {
        let mut manifest: serde_json::Value = serde_json::from_slice(&platform.bytes)?;
        manifest["annotations"] = serde_json::json!({ "dev.refcat.bench.tag": label });
        let bytes = bytes::Bytes::from(serde_json::to_vec(&manifest)?);
        let digest = refcat::digest::sha256(&bytes);
        let target = Target::Digest(digest.clone());
        client
            .put_manifest(repository, &target, &platform.media_type, bytes.clone())
            .await?;
        index["manifests"][i]["digest"] = digest.to_string().into();
        index["manifests"][i]["size"] = bytes.len().into();
    }
    let index = serde_json::to_vec(&index)?.into();
    client
        .put_manifest(
            repository,
            &Target::Tag(tag.parse()?),
            &image.top.media_type,
            index,
        )
        .await?;
    Ok(())
}

fn per_pm(cost: &Cost, row: &Row) -> f64 {
    cost.requests as f64 / row.platform_manifests as f64
}

fn report(rows: &[(Kind, Row)], total: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# refcat at registry size\n");
    let _ = writeln!(
        out,
        "One run on this machine ({} cores), release build, {total:.0} s in all. Each size is \
         N repositories × T tags, every tag its own two-platform image (the alpine sample's \
         layers, each platform manifest annotated with its tag). `scale/r0` is built \
         through the registry API: its images pushed, then a complete signed set for every \
         platform manifest made by `refcat backfill` itself, whose syft and grype replay \
         what the real syft and grype printed once for the alpine sample (publishing is \
         measured, scanning is not). `scale/r1` … are copies of it made in the registry's \
         storage (what `oras copy -r` gives, without its requests): the same digests, the \
         same signed sets. Each copy's signed summary is `scale/r0`'s with the copy's name, \
         signed through refcat's own publishing code, and a second `refcat backfill` folds \
         them into the aggregate (\"settle\" below). A counting \
         proxy in front of the registry counts requests; peak RSS is the process's VmHWM \
         (backfill: /usr/bin/time).\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let _ = writeln!(out, "![time and requests against tags](scale.svg)\n");
    let _ = writeln!(out, "## Unchanged registry: reconcile\n");
    let _ = writeln!(out, "| registry | tags | repositories | platform manifests | build (s) | of it, settling the copies | backfill (s) | backfill requests / pm | backfill peak RSS (MiB) | worker walk (s) | walk requests / pm | worker peak RSS (MiB) |");
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (kind, r) in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.0} s, {:.1} req/pm | {:.2} | {:.3} | {:.0} | {:.2} | {:.3} | {:.0} |",
            kind.name(),
            r.tags,
            r.repositories,
            r.platform_manifests,
            r.build_seconds,
            r.settle.seconds,
            per_pm(&r.settle, r),
            r.backfill.seconds,
            per_pm(&r.backfill, r),
            r.backfill.peak_mib,
            r.walk.seconds,
            per_pm(&r.walk, r),
            r.walk.peak_mib
        );
    }
    let _ = writeln!(out, "\n## serve --aggregate-repository\n");
    let _ = writeln!(
        out,
        "Time (ms) and registry requests; warm figures are medians of 21.\n"
    );
    let _ = writeln!(out, "| registry | tags | directory cold | directory warm | tags page 1 (100 per page) | tags, last page of 20 per page | /v1/vulnerabilities stored | stored warm | /v1/vulnerabilities/{{id}} | serve peak RSS (MiB) |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let ms = |c: &Cost| format!("{:.0} ms, {} req", c.seconds * 1000.0, c.requests);
    for (kind, r) in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} ms | {} | {} | {} | {:.1} ms | {} | {:.0} |",
            kind.name(),
            r.tags,
            ms(&r.directory_cold),
            r.directory_warm_ms,
            ms(&r.tags_first),
            ms(&r.tags_deep),
            ms(&r.stored_aggregate),
            r.stored_aggregate_warm_ms,
            ms(&r.vulnerability),
            r.serve_peak_mib
        );
    }
    let _ = writeln!(out, "\n## The live aggregate, and one change\n");
    let _ = writeln!(out, "| registry | tags | live /v1/vulnerabilities (no stored aggregate) | its serve's peak RSS (MiB) | worker: one new image to a stored aggregate |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for (kind, r) in rows {
        let live = match r.live_gave_up {
            true => format!(
                "gave up at the {} s limit (503), {} req by then",
                LIVE_LIMIT.as_secs(),
                r.live_aggregate.requests
            ),
            false => ms(&r.live_aggregate),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.1} s, {} req |",
            kind.name(),
            r.tags,
            live,
            r.live_serve_peak_mib,
            r.update.seconds,
            r.update.requests
        );
    }
    out
}

/// One line of the plot: its label, colour and points.
type Series = (String, &'static str, Vec<(f64, f64)>);

/// A plot of time and registry requests of the unchanged walks against tags, both axes
/// logarithmic, one line per registry and measure.
fn plot(rows: &[(Kind, Row)]) -> String {
    let (w, h, left, bottom) = (720.0, 420.0, 70.0, 50.0);
    let series: Vec<Series> = [Kind::Distribution, Kind::Zot]
        .iter()
        .flat_map(|kind| {
            let of = |f: fn(&Row) -> f64| -> Vec<(f64, f64)> {
                rows.iter()
                    .filter(|(k, _)| k == kind)
                    .map(|(_, r)| (r.tags as f64, f(r)))
                    .collect()
            };
            let colour = if *kind == Kind::Zot {
                "#1f77b4"
            } else {
                "#d62728"
            };
            [
                (
                    format!("{}: backfill requests", kind.name()),
                    colour,
                    of(|r| r.backfill.requests as f64),
                ),
                (
                    format!("{}: backfill ms", kind.name()),
                    colour,
                    of(|r| r.backfill.seconds * 1000.0),
                ),
                (
                    format!("{}: cold directory requests", kind.name()),
                    colour,
                    of(|r| r.directory_cold.requests as f64),
                ),
            ]
        })
        .collect();
    let (mut xmax, mut ymax) = (10.0_f64, 10.0_f64);
    for (_, _, points) in &series {
        for (x, y) in points {
            xmax = xmax.max(*x);
            ymax = ymax.max(*y);
        }
    }
    let (xmin, ymin) = (10.0_f64, 1.0_f64);
    let px = |x: f64| {
        left + (x.max(xmin).log10() - xmin.log10()) / (xmax.log10() - xmin.log10())
            * (w - left - 20.0)
    };
    let py = |y: f64| {
        h - bottom
            - (y.max(ymin).log10() - ymin.log10()) / (ymax.log10() - ymin.log10())
                * (h - bottom - 20.0)
    };
    let mut svg = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/>", h + 110.0);
    let _ = write!(svg, "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{left}\" y1=\"20\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>", h - bottom, w - 20.0, h - bottom, h - bottom);
    let _ = write!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">tags (log)</text><text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">requests or milliseconds (log)</text>", w / 2.0, h - 15.0, h / 2.0, h / 2.0);
    let mut x = 10.0;
    while x <= xmax * 1.01 {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x}</text>",
            px(x),
            h - bottom + 15.0
        );
        x *= 10.0;
    }
    let mut y = 1.0;
    while y <= ymax * 1.01 {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{y}</text>",
            left - 5.0,
            py(y) + 4.0
        );
        y *= 10.0;
    }
    for (i, (label, colour, points)) in series.iter().enumerate() {
        let dash = ["", "6 3", "2 2"][i % 3];
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = write!(svg, "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>", path.join(" "));
        let ly = h + 10.0 + 15.0 * i as f64;
        let _ = write!(svg, "<line x1=\"{left}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/><text x=\"{}\" y=\"{}\">{label}</text>", left + 30.0, left + 36.0, ly + 4.0);
    }
    svg.push_str("</svg>\n");
    svg
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (report_path, sizes) = match &args[..] {
        [report] => (PathBuf::from(report), vec![100, 1000, 10000]),
        [report, sizes] => (
            PathBuf::from(report),
            sizes
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<usize>, _>>()?,
        ),
        _ => bail!("usage: bench_scale REPORT [SIZES, comma-separated; default 100,1000,10000]"),
    };
    let started = Instant::now();
    let keys = tempfile::tempdir()?;
    let pair = refcat::sign::KeyPair::generate();
    std::fs::write(
        keys.path().join("refcat.key"),
        pair.to_encrypted_pem(&refcat::secret::Secret::new(PASSWORD))?,
    )?;
    std::fs::write(keys.path().join("refcat.pub"), pair.public_key().to_pem())?;
    let scanners_dir = tempfile::tempdir()?;
    let scanners = replaying_scanners(scanners_dir.path())?;
    let mut rows = Vec::new();
    std::fs::create_dir_all(report_path.parent().unwrap_or(Path::new(".")))?;
    // A size's registry storage (hundreds of thousands of files at 10,000 tags) is
    // removed while the next size runs.
    let mut removals = Vec::new();
    for kind in [Kind::Distribution, Kind::Zot] {
        for &size in &sizes {
            let (row, storage) = measure(kind, size, keys.path(), &scanners).await?;
            removals.push(std::thread::spawn(move || drop(storage)));
            rows.push((kind, row));
            // Written after every size: a long run that fails later keeps what it measured.
            std::fs::write(&report_path, report(&rows, started.elapsed().as_secs_f64()))?;
            std::fs::write(report_path.with_extension("svg"), plot(&rows))?;
        }
    }
    for removal in removals {
        let _ = removal.join();
    }
    Ok(())
}
