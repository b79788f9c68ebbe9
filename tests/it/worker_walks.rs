//! `refcat worker`'s walks: a new Grype DB re-scans with grype alone and keeps
//! `firstSeen`; a release whose tags moved stays in the history and pullable; every
//! walk logs the active CVEs and exports exposure metrics.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::worker::{notified_worker, Worker};
use crate::common::{free_port, push_fixture, run_ok, Kind, Registry};

/// The vulnerabilities view of `reference` as JSON: per platform, the matches with
/// their `firstSeen`.
async fn vulnerabilities(registry: &Registry, reference: &str) -> serde_json::Value {
    let view = refcat::catalog::vulnerabilities::vulnerabilities(
        &registry.client(),
        &reference.parse().unwrap(),
        &Default::default(),
        &refcat::trust::Trust::show_unverified(),
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
    let (registry, keys) = common::keyed_distribution();
    common::published::tokio_run(push_fixture(&registry.client(), "alpine"));
    // The worker gets its own copy of the fixture DB, which this test replaces.
    let db = common::own_grype_db();
    let worker = Worker::start(
        &registry,
        keys.path(),
        free_port(),
        &[
            ("GRYPE_DB_CACHE_DIR", db.path().as_os_str()),
            ("REFCAT_KEEP", "1".as_ref()),
        ],
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

    let syft_jobs = worker.metric("refcat_worker_artifacts_total{format=\"syft-json\"}");
    let grype_jobs = worker.metric("refcat_worker_artifacts_total{format=\"grype-json\"}");
    common::import_newer_grype_db(db.path());

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
    // --keep 1: each platform's older Grype artifact is gone, with its signature; what
    // is left verifies.
    assert_eq!(worker.metric("refcat_worker_pruned_total"), 2);
    let repository: refcat::reference::RepositoryName = "fixtures/alpine".parse().unwrap();
    let client = registry.client();
    let exists = |target: refcat::reference::Target| {
        common::published::tokio_run(client.head_manifest(&repository, &target))
            .unwrap()
            .is_some()
    };
    for platform in ["linux/amd64", "linux/arm64/v8"] {
        let artifact = |view: &serde_json::Value| -> refcat::digest::Digest {
            view["platforms"][platform]["artifact"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        };
        let (old, new) = (artifact(&before), artifact(&after));
        assert_ne!(old, new, "{platform}");
        let listed = common::published::listed(&reference_of(&after, &registry, platform));
        let grype: Vec<_> = listed["grype-json"]
            .iter()
            .map(|r| r["digest"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(grype, [new.to_string()], "{platform}");
        assert!(!exists(refcat::reference::Target::Digest(old.clone())));
        // Its Sigstore bundle was listed in the old artifact's tag-schema index.
        let index = refcat::tag_schema::referrers_tag(&old).unwrap();
        assert!(!exists(refcat::reference::Target::Tag(index)), "{platform}");
    }
    let verify = common::refcat()
        .args(["verify", "--key"])
        .arg(keys.path().join("refcat.pub"))
        .arg(&reference)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
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
    let (registry, _keys, worker) = notified_worker(Kind::Distribution);
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
            &refcat::trust::Trust::show_unverified(),
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

    // The new digest's first Grype artifact carries firstSeen over from the release
    // it replaced in stream 12 (the same packages, so the same matches), and so keeps
    // dates older than itself.
    let view = |digest: &refcat::digest::Digest| {
        let reference = format!("{}/fixtures/debian@{digest}", registry.host);
        common::published::tokio_run(vulnerabilities(&registry, &reference))
    };
    let (old, new) = (
        first_seen(&view(&first.top.digest), "linux/amd64"),
        first_seen(&view(&second), "linux/amd64"),
    );
    assert!(!old.is_empty());
    assert_eq!(new, old, "firstSeen carried over from the previous release");

    // After garbage collection the old release is still pullable, config and layers
    // included. (docker-registry's `--delete-untagged` is not used: it deletes even the
    // manifests an index lists, distribution/distribution#3004, so no index can keep a
    // release there; zot's GC follows index references.)
    run_ok(
        Command::new(common::system_tool("docker-registry"))
            .arg("garbage-collect")
            .arg(registry.config_path()),
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
    let (registry, keys) = common::keyed_distribution();
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

/// The exposure a walk reports from a repository's signed summary is what reading the
/// image's verified results gives: every (id, package) once per tag, with the severity
/// and the age from the record's `firstSeen`.
#[tokio::test]
async fn exposure_from_a_summary_equals_exposure_read_from_the_registry() {
    use refcat::catalog::summary::SummaryImage;
    use refcat::worker::exposure;

    let registry = Registry::start(common::Kind::Distribution);
    let keys = common::publish_fixtures(&registry).await;
    let client = registry.client();
    let key = refcat::sign::PublicKey::from_pem(
        &std::fs::read_to_string(keys.path().join("refcat.pub")).unwrap(),
    )
    .unwrap();
    let own = refcat::trust::Trust::own(key);
    let repository: refcat::reference::RepositoryName = "fixtures/debian".parse().unwrap();
    let top = client
        .head_manifest(
            &repository,
            &refcat::reference::Target::Tag("12".parse().unwrap()),
        )
        .await
        .unwrap()
        .unwrap();
    let tags: Vec<refcat::reference::Tag> =
        vec!["12".parse().unwrap(), "bookworm".parse().unwrap()];
    let now = time::OffsetDateTime::now_utc();
    let image = SummaryImage::read(&client, &repository, &top.digest, &own)
        .await
        .unwrap();
    let key = |e: &exposure::Exposure| (e.tag.clone(), e.cve.clone(), e.package.clone());
    let mut summarised = exposure::of_summary(&image, &repository, &tags, now);
    let mut read = exposure::of_image(&client, &own, &repository, &top.digest, &tags, now)
        .await
        .unwrap();
    summarised.sort_by_key(key);
    read.sort_by_key(key);
    assert!(
        read.iter()
            .any(|e| e.cve == "CVE-2023-4911" && e.package == "libc6"),
        "{read:?}"
    );
    assert!(read.iter().all(|e| e.exposure_hours.is_some()), "{read:?}");
    assert_eq!(summarised, read);
}
