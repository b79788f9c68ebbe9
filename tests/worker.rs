//! `refcat worker` as users run it: the real binary, real registries, real syft and
//! grype. A push to docker-registry 2.8 notifies the worker, which publishes; webhooks
//! that are malformed, oversized or unauthenticated are refused and enqueue nothing; a
//! flood of duplicate events publishes once; a worker that dies mid-job is finished by
//! the next start's reconcile walk.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::published::check_recovered;
use common::{
    free_port, push_fixture, refcat, tool, tools_root, write_keys, Registry, KEY_PASSWORD,
};

const SECRET: &str = "webhook-s3cret";

/// A running `refcat worker`, killed on drop.
struct Worker {
    child: Child,
    base: String,
    /// Where its standard output (the exposure lines) goes.
    stdout: tempfile::NamedTempFile,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    /// Starts the worker for `registry` on `port` with the key in `keys`.
    fn start(
        registry: &Registry,
        keys: &std::path::Path,
        port: u16,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Worker {
        let mut cmd = refcat();
        cmd.args([
            "worker",
            &registry.host,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--key")
        .arg(keys.join("refcat.key"))
        .args(["--max-body-kib", "64", "--db-check-interval", "1"])
        .env("REFCAT_WEBHOOK_SECRET", SECRET)
        .env("REFCAT_RECONCILE_INTERVAL", "0")
        .env("REFCAT_SYFT", tool("syft"))
        .env("REFCAT_GRYPE", tool("grype"))
        .env("GRYPE_DB_CACHE_DIR", tools_root().join("grype-db"))
        .env("COSIGN_PASSWORD", KEY_PASSWORD)
        .envs(env.iter().copied());
        let stdout = tempfile::NamedTempFile::new().unwrap();
        cmd.stdout(Stdio::from(stdout.reopen().unwrap()));
        let child = cmd.spawn().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::blocking::get(format!("{base}/healthz")).is_err() {
            assert!(Instant::now() < deadline, "worker not up after 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Worker {
            child,
            base,
            stdout,
        }
    }

    /// A metric's value (0 when absent).
    fn metric(&self, series: &str) -> u64 {
        let text = reqwest::blocking::get(format!("{}/metrics", self.base))
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until jobs have been published and nothing waits or runs any more.
    fn wait_idle(&self, limit: Duration) -> Duration {
        let start = Instant::now();
        let idle = || {
            self.metric("refcat_worker_jobs_total{outcome=\"published\"}") > 0
                && self.metric("refcat_worker_queue_depth") == 0
                && self.metric("refcat_worker_jobs_running") == 0
        };
        loop {
            if idle() {
                let at = start.elapsed();
                std::thread::sleep(Duration::from_millis(500));
                if idle() {
                    return at;
                }
            }
            assert!(
                start.elapsed() < limit,
                "the worker was still busy after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `n` jobs have ended with `outcome`.
    fn wait_for(&self, outcome: &str, n: u64, limit: Duration) -> Duration {
        let start = Instant::now();
        let series = format!("refcat_worker_jobs_total{{outcome=\"{outcome}\"}}");
        while self.metric(&series) < n {
            assert!(
                start.elapsed() < limit,
                "no {n} {outcome} jobs after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        start.elapsed()
    }
}

/// A distribution notification of a manifest push of `digest` in `repository`.
fn push_event(repository: &str, digest: &str) -> String {
    serde_json::json!({ "events": [{
        "id": "1", "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest,
            "repository": repository, "tag": "3.19"
        }
    }]})
    .to_string()
}

#[test]
fn a_push_to_distribution_is_published_from_its_notification() {
    let port = free_port();
    let registry =
        Registry::distribution_notifying(&format!("http://127.0.0.1:{port}/events"), SECRET);
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let worker = Worker::start(&registry, keys.path(), port, &[]);

    let pushed = Instant::now();
    common::published::tokio_run(push_fixture(&registry.client(), "alpine"));
    let pushing = pushed.elapsed();
    let done = worker.wait_idle(Duration::from_secs(300));
    eprintln!(
        "push {:.1} s; pushed to a complete signed set {:.1} s",
        pushing.as_secs_f64(),
        done.as_secs_f64()
    );
    common::published::tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/alpine:3.19",
    ));
    // Three image manifests were pushed (two platforms, then the index): three jobs.
    // Whichever ran first published; the index found its platforms done or in hand.
    let outcome = |o: &str| worker.metric(&format!("refcat_worker_jobs_total{{outcome=\"{o}\"}}"));
    assert_eq!(outcome("failed"), 0);
    assert_eq!(outcome("published") + outcome("complete"), 3);
    // refcat's own 12 pushes by digest (3 artifacts and 3 signatures per platform) came
    // back as notifications; each was recognised as a referrer and skipped.
    assert_eq!(outcome("skipped"), 12);
}

#[test]
fn bad_webhooks_are_refused_and_a_flood_of_duplicates_publishes_once() {
    let registry = Registry::referrers_api();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    common::published::tokio_run(push_fixture(&registry.client(), "alpine"));
    let port = free_port();
    let worker = Worker::start(&registry, keys.path(), port, &[]);
    // The start-up walk found the image; wait for it, then push a second one for the flood.
    worker.wait_for("published", 1, Duration::from_secs(300));
    let debian = common::published::tokio_run(push_fixture(&registry.client(), "debian"));

    let http = reqwest::blocking::Client::new();
    let url = format!("{}/events", worker.base);
    let event = push_event("fixtures/debian", debian.top.digest.as_ref());
    let post = |body: &str, auth: Option<&str>| {
        let mut request = http
            .post(&url)
            .header(
                "content-type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .body(body.to_string());
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send().unwrap().status().as_u16()
    };
    let bearer = format!("Bearer {SECRET}");
    assert_eq!(post(&event, None), 401);
    assert_eq!(post(&event, Some("Bearer wrong")), 403);
    assert_eq!(post("{not json", Some(&bearer)), 400);
    assert_eq!(
        post(
            &push_event("../etc", debian.top.digest.as_ref()),
            Some(&bearer)
        ),
        400
    );
    assert_eq!(post(&"x".repeat(65 * 1024), Some(&bearer)), 413);
    let signed = refcat::worker::auth::sign("wrong-secret", event.as_bytes());
    let status = http
        .post(&url)
        .header("x-refcat-signature", format!("sha256={signed}"))
        .body(event.clone())
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 403);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(worker.metric("refcat_worker_queue_depth"), 0);
    assert_eq!(worker.metric("refcat_worker_jobs_running"), 0);
    assert_eq!(
        worker.metric("refcat_worker_jobs_total{outcome=\"published\"}"),
        1,
        "nothing was enqueued"
    );

    // 1,000 events for one digest, HMAC-signed, from 8 senders at once.
    let signature = format!(
        "sha256={}",
        refcat::worker::auth::sign(SECRET, event.as_bytes())
    );
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..125 {
                    let status = http
                        .post(&url)
                        .header("x-refcat-signature", &signature)
                        .body(event.clone())
                        .send()
                        .unwrap()
                        .status();
                    assert_eq!(status, 202);
                }
            });
        }
    });
    worker.wait_for("published", 2, Duration::from_secs(300));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        worker.metric("refcat_worker_jobs_total{outcome=\"published\"}"),
        2
    );
    assert_eq!(
        worker.metric("refcat_worker_jobs_total{outcome=\"complete\"}"),
        0,
        "duplicates were dropped, not re-run"
    );
    assert_eq!(
        worker.metric("refcat_worker_webhooks_total{status=\"202\"}"),
        1000
    );
    common::published::tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/debian:12",
    ));
}

#[test]
fn a_worker_killed_mid_job_is_finished_by_the_next_start() {
    let registry = Registry::distribution(None);
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    common::published::tokio_run(push_fixture(&registry.client(), "debian"));
    // The start-up walk finds the image; the worker dies right after attaching the SBOMs.
    let port = free_port();
    let mut dying = Worker::start(
        &registry,
        keys.path(),
        port,
        &[("REFCAT_ABORT_AFTER", "attach".as_ref())],
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    while dying.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the worker did not reach the abort point"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(dying);
    let worker = Worker::start(&registry, keys.path(), free_port(), &[]);
    worker.wait_for("published", 1, Duration::from_secs(300));
    common::published::tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/debian:12",
    ));
}

/// The vulnerabilities view of `reference` as JSON: per platform, the matches with
/// their `firstSeen`.
async fn vulnerabilities(registry: &Registry, reference: &str) -> serde_json::Value {
    let view = refcat::catalog::vulnerabilities::vulnerabilities(
        &registry.client(),
        &reference.parse().unwrap(),
        &Default::default(),
        &Default::default(),
    )
    .await
    .unwrap();
    serde_json::to_value(view).unwrap()
}

/// `id@package` → `firstSeen` for one platform of a vulnerabilities view.
fn first_seen(
    view: &serde_json::Value,
    platform: &str,
) -> std::collections::BTreeMap<String, String> {
    view["platforms"][platform]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let key = format!(
                "{}@{}",
                m["id"].as_str().unwrap(),
                m["package"].as_str().unwrap()
            );
            (key, m["firstSeen"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn a_new_grype_db_rescans_with_grype_only_and_keeps_first_seen() {
    let registry = Registry::distribution(None);
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    common::published::tokio_run(push_fixture(&registry.client(), "alpine"));
    // The worker gets its own copy of the fixture DB, which this test replaces.
    let db = tempfile::tempdir().unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(tools_root().join("grype-db/."))
        .arg(db.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let worker = Worker::start(
        &registry,
        keys.path(),
        free_port(),
        &[("GRYPE_DB_CACHE_DIR", db.path().as_os_str())],
    );
    worker.wait_idle(Duration::from_secs(300));
    let reference = format!("{}/fixtures/alpine:3.19", registry.host);
    let before = common::published::tokio_run(vulnerabilities(&registry, &reference));
    let amd64_before = first_seen(&before, "linux/amd64");
    assert!(
        amd64_before.keys().any(|k| k.starts_with("CVE-2024-2511@")),
        "{amd64_before:?}"
    );
    let syft_before = common::published::listed(&reference_of(&before, &registry, "linux/amd64"))
        ["syft-json"]
        .clone();
    std::thread::sleep(Duration::from_secs(1)); // a later second for the new firstSeen

    // The fixture advisories plus one on busybox, built a week later.
    let sources = tempfile::tempdir().unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(common::testdata().join("grypedb/providers/."))
        .arg(sources.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let advisory = serde_json::json!({ "Vulnerability": {
        "Name": "CVE-2026-0001", "NamespaceName": "alpine:3.19", "Severity": "High",
        "Link": "https://security.alpinelinux.org/vuln/CVE-2026-0001",
        "Description": "A test advisory added after the first scan.", "CVSS": [], "Metadata": {},
        "FixedIn": [{ "Name": "busybox", "NamespaceName": "alpine:3.19", "VersionFormat": "apk",
            "Version": "1.36.1-r16", "VendorAdvisory": { "NoAdvisory": false, "AdvisorySummary": [] } }]
    }});
    std::fs::write(
        sources.path().join("alpine/CVE-2026-0001.json"),
        advisory.to_string(),
    )
    .unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let built = Command::new(tool("build-grype-db"))
        .arg("-providers")
        .arg(sources.path())
        .arg("-out")
        .arg(out_dir.path())
        .args(["-built", "2026-11-08T00:00:00Z"])
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let archive = String::from_utf8(built.stdout).unwrap().trim().to_string();
    let syft_jobs = worker.metric("refcat_worker_artifacts_total{format=\"syft-json\"}");
    let grype_jobs = worker.metric("refcat_worker_artifacts_total{format=\"grype-json\"}");
    let imported = Command::new(tool("grype"))
        .args(["db", "import", &archive])
        .env("GRYPE_DB_CACHE_DIR", db.path())
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );

    // The watcher sees the new DB; both platforms get a new Grype artifact, nothing else.
    let start = Instant::now();
    while worker.metric("refcat_worker_artifacts_total{format=\"grype-json\"}") < grype_jobs + 2 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no re-scan after the DB changed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    worker.wait_idle(Duration::from_secs(300));
    assert_eq!(
        worker.metric("refcat_worker_artifacts_total{format=\"syft-json\"}"),
        syft_jobs,
        "syft ran again"
    );
    assert_eq!(
        worker.metric("refcat_worker_artifacts_total{format=\"spdx-json\"}"),
        syft_jobs
    );
    assert_eq!(
        worker.metric("refcat_worker_grype_db_built_seconds"),
        1_794_096_000
    );
    let after = common::published::tokio_run(vulnerabilities(&registry, &reference));
    assert_eq!(
        after["platforms"]["linux/amd64"]["dbBuilt"],
        "2026-11-08T00:00:00Z"
    );
    let syft_after = common::published::listed(&reference_of(&after, &registry, "linux/amd64"))
        ["syft-json"]
        .clone();
    assert_eq!(syft_after, syft_before, "the Syft artifact is the same one");
    for platform in ["linux/amd64", "linux/arm64/v8"] {
        let (old, new) = (first_seen(&before, platform), first_seen(&after, platform));
        for (key, seen) in &old {
            assert_eq!(
                new.get(key),
                Some(seen),
                "{platform}: {key} kept its firstSeen"
            );
        }
        // The advisory names the busybox origin package: grype matches busybox and the
        // packages built from it (busybox-binsh, ssl_client).
        let added: Vec<_> = new.keys().filter(|k| !old.contains_key(*k)).collect();
        assert!(
            added.contains(&&"CVE-2026-0001@busybox".to_string()),
            "{platform}: {added:?}"
        );
        let latest_old = old.values().max().unwrap();
        for key in added {
            assert!(key.starts_with("CVE-2026-0001@"), "{platform}: {key}");
            assert!(
                new[key] > *latest_old,
                "{platform}: {key} has a new firstSeen"
            );
        }
    }
}

/// `registry/repository@digest` of one platform manifest in a view.
fn reference_of(view: &serde_json::Value, registry: &Registry, platform: &str) -> String {
    format!(
        "{}/fixtures/alpine@{}",
        registry.host,
        view["platforms"][platform]["digest"].as_str().unwrap()
    )
}

#[test]
fn a_release_whose_tags_moved_stays_in_the_history_and_pullable_after_gc() {
    let port = free_port();
    let registry =
        Registry::distribution_notifying(&format!("http://127.0.0.1:{port}/events"), SECRET);
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let worker = Worker::start(&registry, keys.path(), port, &[]);
    let client = registry.client();
    let first = common::published::tokio_run(push_fixture(&client, "debian"));
    worker.wait_idle(Duration::from_secs(300));

    // A rebuild: the same layers, a new manifest, pushed over both tags.
    let mut manifest: serde_json::Value = serde_json::from_slice(&first.top.bytes).unwrap();
    manifest["annotations"] =
        serde_json::json!({ "org.opencontainers.image.version": "12-rebuild" });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let repository: refcat::reference::RepositoryName = "fixtures/debian".parse().unwrap();
    for tag in ["12", "bookworm"] {
        let target = refcat::reference::Target::Tag(tag.parse().unwrap());
        common::published::tokio_run(client.put_manifest(
            &repository,
            &target,
            &first.top.media_type,
            bytes.clone().into(),
        ))
        .unwrap();
    }
    let second = refcat::digest::sha256(&bytes);

    // The worker hears of the new digest, records it and publishes for it; the history
    // of stream 12 then lists both releases.
    let start = Instant::now();
    let history = loop {
        let view = common::published::tokio_run(refcat::catalog::history::history(
            &client,
            &repository,
            &"12".parse().unwrap(),
            &Default::default(),
        ))
        .unwrap();
        if view.releases.len() == 2 && view.releases.iter().all(|r| r.vulnerabilities.is_some()) {
            break view;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "history: {view:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let current: Vec<_> = history.releases.iter().filter(|r| r.current).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].digest, second.to_string());
    let moved = history.releases.iter().find(|r| !r.current).unwrap();
    assert_eq!(moved.digest, first.top.digest.to_string());
    assert_eq!(moved.tags, ["12"]);

    // After garbage collection the old release is still pullable, config and layers
    // included. (docker-registry's `--delete-untagged` is not used: it deletes even the
    // manifests an index lists, distribution/distribution#3004, so no index can keep a
    // release there; zot's GC follows index references.)
    let gc = Command::new(common::system_tool("docker-registry"))
        .arg("garbage-collect")
        .arg(registry.config_path())
        .output()
        .unwrap();
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    let target = refcat::reference::Target::Digest(first.top.digest.clone());
    let pulled = common::published::tokio_run(client.get_manifest(&repository, &target));
    let Ok(refcat::registry::FetchedManifest {
        manifest: refcat::oci::Manifest::Image(image),
        ..
    }) = &pulled
    else {
        panic!("the old release is still pullable: {pulled:?}");
    };
    for blob in std::iter::once(&image.config).chain(&image.layers) {
        let fetched =
            common::published::tokio_run(client.get_blob(&repository, &blob.digest, None));
        assert!(
            fetched.is_ok(),
            "blob {} of the old release: {fetched:?}",
            blob.digest
        );
    }
}

#[test]
fn every_walk_logs_each_active_cve_and_exports_exposure_metrics() {
    let registry = Registry::distribution(None);
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    common::published::tokio_run(push_fixture(&registry.client(), "debian"));
    // The first walk queues the image; a later one sees its Grype artifact.
    let worker = Worker::start(
        &registry,
        keys.path(),
        free_port(),
        &[("REFCAT_RECONCILE_INTERVAL", "2".as_ref())],
    );
    worker.wait_idle(Duration::from_secs(300));
    let start = Instant::now();
    let lines = loop {
        let text = std::fs::read_to_string(worker.stdout.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if !lines.is_empty() && worker.metric("refcat_active_cves{severity=\"high\"}") > 0 {
            break lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no exposure lines: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let glibc = lines
        .iter()
        .find(|l| l["cve"] == "CVE-2023-4911" && l["package"] == "libc6")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(glibc["repository"], "fixtures/debian");
    assert!(["12", "bookworm"].contains(&glibc["tag"].as_str().unwrap()));
    assert_eq!(glibc["severity"], "high");
    let hours = glibc["exposure_hours"].as_f64().unwrap();
    assert!(
        (0.0..1.0).contains(&hours),
        "first seen minutes ago: {hours}"
    );
    // The gauge counts distinct ids per severity among the lines of one walk.
    let walk: std::collections::BTreeSet<(String, String)> = lines
        .iter()
        .filter(|l| l["tag"] == glibc["tag"])
        .map(|l| {
            (
                l["severity"].as_str().unwrap().to_string(),
                l["cve"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let high = walk.iter().filter(|(s, _)| s == "high").count() as u64;
    assert_eq!(worker.metric("refcat_active_cves{severity=\"high\"}"), high);
    assert!(worker.metric("refcat_cve_exposure_hours_count{severity=\"high\"}") >= high);
}
