//! Promotion reuse: `oras copy` (without `-r`) of a published image into another
//! repository, as a promotion from `fixtures/alpine` to `promoted/alpine` does. The
//! worker finds refcat's complete set for the same digests through its signed subject
//! index and copies it, signatures and all: no syft, no grype, and `cosign verify` and
//! `refcat verify` pass in the new repository. With `--no-reuse` it scans again.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use crate::common::published::{check_recovered, existing_per_platform, tokio_run};
use crate::common::worker::{Worker, SECRET};
use crate::common::{
    cosign_verify, counted_grype, counted_syft, free_port, import_newer_grype_db, own_grype_db,
    push_fixture, run_ok, runs, tool, write_keys, Kind, Registry,
};

const INDEX_REPOSITORY: &str = "refcat/catalog";

/// A registry of `kind` notifying a worker that keeps its records in `refcat/catalog`
/// and runs counted scanners (launchers in `scans`).
fn counted_worker(
    kind: Kind,
    scans: &std::path::Path,
    keys: &std::path::Path,
    extra: &[&str],
) -> (Registry, Worker, u16) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/events");
    let registry = match kind {
        Kind::Distribution => Registry::distribution_notifying(&url, SECRET),
        Kind::Zot => Registry::zot_notifying(&url, SECRET),
    };
    let worker = start_counted(&registry, port, scans, keys, extra, &[]);
    (registry, worker, port)
}

/// Starts a worker on `port` for `registry` that keeps its records in `refcat/catalog`
/// and runs counted scanners (launchers in `scans`).
fn start_counted(
    registry: &Registry,
    port: u16,
    scans: &std::path::Path,
    keys: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &OsStr)],
) -> Worker {
    let (syft, grype) = (counted_syft(scans, usize::MAX), counted_grype(scans));
    let mut all: Vec<(&str, &OsStr)> = vec![
        // The copy is logged at info.
        ("RUST_LOG", OsStr::new("warn,refcat=info")),
        ("REFCAT_SYFT", syft.as_os_str()),
        ("REFCAT_GRYPE", grype.as_os_str()),
        ("REFCAT_AGGREGATE_REPOSITORY", OsStr::new(INDEX_REPOSITORY)),
    ];
    all.extend_from_slice(env);
    let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    Worker::start_adjusted(&registry.host, keys, port, &all, |cmd| {
        cmd.args(&extra);
    })
}

/// `oras copy` of the published alpine fixture to `promoted/alpine`.
fn oras_copy(registry: &Registry) {
    let host = &registry.host;
    run_ok(std::process::Command::new(tool("oras")).args([
        "copy",
        "--from-plain-http",
        "--to-plain-http",
        &format!("{host}/fixtures/alpine:3.19"),
        &format!("{host}/promoted/alpine:3.19"),
    ]));
}

/// How many times the counted syft and grype (launchers in `scans`) ran.
fn scanner_runs(scans: &std::path::Path) -> (usize, usize) {
    (runs(scans, "scans"), runs(scans, "grype-runs"))
}

/// Waits until the worker has stored its subject index.
fn wait_for_subject_index(registry: &Registry, worker: &Worker) {
    let client = registry.client();
    let repository = INDEX_REPOSITORY.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tags = tokio_run(client.list_tags(&repository, None)).unwrap_or_default();
        if tags.iter().any(|t| t.as_str() == "refcat-subjects") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no subject index after 120 s:\n{}",
            worker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Publishes the alpine fixture, then copies it to `promoted/alpine` with oras; the
/// scanner runs before and after the copy, and the worker.
fn promote(kind: Kind, extra: &[&str]) -> (Registry, tempfile::TempDir, tempfile::TempDir, Worker) {
    promote_after(kind, extra, |_| {})
}

/// As [`promote`], with `meddle` run on the registry between publishing and the copy.
fn promote_after(
    kind: Kind,
    extra: &[&str],
    meddle: impl FnOnce(&Registry),
) -> (Registry, tempfile::TempDir, tempfile::TempDir, Worker) {
    let (scans, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_keys(keys.path());
    let (registry, worker, _) = counted_worker(kind, scans.path(), keys.path(), extra);
    tokio_run(push_fixture(&registry.client(), "alpine"));
    let scanned = worker.wait_idle(Duration::from_secs(300));
    wait_for_subject_index(&registry, &worker);
    // syft and grype once per platform.
    assert_eq!(scanner_runs(scans.path()), (2, 2));
    meddle(&registry);
    let published = worker.jobs("published");
    let copied = Instant::now();
    oras_copy(&registry);
    worker.wait_for("published", published + 1, Duration::from_secs(300));
    let promoted = worker.wait_idle(Duration::from_secs(300));
    eprintln!(
        "{kind:?}: pushed to a complete set {:.1} s; copied to a complete set {:.1} s",
        scanned.as_secs_f64(),
        (copied.elapsed().min(promoted)).as_secs_f64()
    );
    (registry, keys, scans, worker)
}

fn promotion_costs_no_scan(kind: Kind) {
    let (registry, keys, scans, worker) = promote(kind, &[]);
    // Neither syft nor grype ran for the copy.
    assert_eq!(scanner_runs(scans.path()), (2, 2));
    // Three artifacts per platform, copied and counted.
    assert_eq!(worker.metric("refcat_worker_reused_total"), 6);
    assert!(
        worker.log().contains("reused refcat's set"),
        "{}",
        worker.log()
    );
    assert_eq!(worker.jobs("failed"), 0);
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "promoted/alpine:3.19",
    ));
    // Byte-identical: the same artifact digests as in the source, and cosign accepts
    // each one's signature in the new repository.
    let host = &registry.host;
    let digests = |image: &str| {
        let mut digests = artifact_digests(&registry, image);
        digests.sort_by_key(ToString::to_string);
        digests
    };
    let promoted = digests("promoted/alpine:3.19");
    assert_eq!(promoted, digests("fixtures/alpine:3.19"));
    for artifact in &promoted {
        let (ok, stderr) = cosign_verify(
            &keys.path().join("refcat.pub"),
            &format!("{host}/promoted/alpine@{artifact}"),
        );
        assert!(ok, "cosign verify {artifact}: {stderr}");
    }
}

#[test]
fn a_promoted_copy_costs_no_scan_on_zot() {
    promotion_costs_no_scan(Kind::Zot);
}

#[test]
fn a_promoted_copy_costs_no_scan_on_distribution() {
    promotion_costs_no_scan(Kind::Distribution);
}

#[test]
fn no_reuse_scans_the_copy_again() {
    let (registry, keys, scans, worker) = promote(Kind::Zot, &["--no-reuse"]);
    // syft and grype ran again for each platform of the copy.
    assert_eq!(scanner_runs(scans.path()), (4, 4));
    assert_eq!(worker.metric("refcat_worker_reused_total"), 0);
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "promoted/alpine:3.19",
    ));
}

#[test]
fn a_grype_result_of_an_older_db_is_not_reused() {
    // Published with the fixture DB, by a worker that then stops.
    let (scans, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_keys(keys.path());
    let (registry, first, port) = counted_worker(Kind::Zot, scans.path(), keys.path(), &[]);
    tokio_run(push_fixture(&registry.client(), "alpine"));
    first.wait_idle(Duration::from_secs(300));
    wait_for_subject_index(&registry, &first);
    drop(first);
    // A worker with a newer DB, on the port the registry notifies, covering only the
    // promoted repository: the source's Grype results are stale for it, and it does not
    // scan the source again.
    let db = own_grype_db();
    import_newer_grype_db(db.path());
    let worker = start_counted(
        &registry,
        port,
        scans.path(),
        keys.path(),
        &["--repository", "promoted/*"],
        &[("GRYPE_DB_CACHE_DIR", db.path().as_os_str())],
    );
    oras_copy(&registry);
    worker.wait_for("published", 1, Duration::from_secs(300));
    worker.wait_idle(Duration::from_secs(300));
    // No syft for the copy; grype once per platform on the copied Syft JSON.
    assert_eq!(scanner_runs(scans.path()), (2, 4));
    // The SBOMs were copied (two per platform), the Grype results made anew.
    assert_eq!(worker.metric("refcat_worker_reused_total"), 4);
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "promoted/alpine:3.19",
    ));
    let client = registry.client();
    let reference = format!("{}/promoted/alpine:3.19", registry.host);
    let source = format!("{}/fixtures/alpine:3.19", registry.host);
    let grype = |reference: &str| {
        tokio_run(existing_per_platform(&client, reference))
            .iter()
            .map(|e| {
                e.of(refcat::artifact::Format::GrypeJson)[0]
                    .digest()
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    let (promoted, stale) = (grype(&reference), grype(&source));
    assert!(
        promoted.iter().all(|d| !stale.contains(d)),
        "{promoted:?} {stale:?}"
    );
}

#[test]
fn an_unsigned_subject_index_is_never_followed() {
    let (scans, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_keys(keys.path());
    let (registry, worker, _) = counted_worker(Kind::Zot, scans.path(), keys.path(), &[]);
    tokio_run(push_fixture(&registry.client(), "alpine"));
    worker.wait_idle(Duration::from_secs(300));
    wait_for_subject_index(&registry, &worker);
    // A pusher replaces the index with the same document, unsigned.
    let work = tempfile::tempdir().unwrap();
    let index = format!("{}/{INDEX_REPOSITORY}:refcat-subjects", registry.host);
    let kind = "application/vnd.dev.refcat.subject-index.v1+json";
    let oras = |args: &[&str]| {
        run_ok(
            std::process::Command::new(tool("oras"))
                .current_dir(work.path())
                .args(args)
                .arg("--plain-http"),
        )
    };
    oras(&["pull", &index]);
    let document = std::fs::read_to_string(work.path().join("subjects.json")).unwrap();
    assert!(document.contains("fixtures/alpine"), "{document}");
    oras(&[
        "push",
        "--artifact-type",
        kind,
        &index,
        &format!("subjects.json:{kind}"),
    ]);
    let published = worker.jobs("published");
    oras_copy(&registry);
    worker.wait_for("published", published + 1, Duration::from_secs(300));
    worker.wait_idle(Duration::from_secs(300));
    // Nothing was copied on the forged index's word: the copy was scanned.
    assert_eq!(worker.metric("refcat_worker_reused_total"), 0);
    assert_eq!(scanner_runs(scans.path()).0, 4);
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "promoted/alpine:3.19",
    ));
}

/// The digests of refcat's artifacts on every platform of `image` in `registry`.
fn artifact_digests(registry: &Registry, image: &str) -> Vec<refcat::digest::Digest> {
    let reference = format!("{}/{image}", registry.host);
    tokio_run(existing_per_platform(&registry.client(), &reference))
        .iter()
        .flat_map(|e| refcat::artifact::Format::ALL.map(|f| e.of(f)[0].digest().clone()))
        .collect()
}

#[test]
fn a_pushers_extra_signatures_are_never_copied() {
    // A pusher attaches to each of refcat's artifacts in the source repository three
    // copies of refcat's own bundle (each proves the artifact, so each would pass a
    // check), and a bundle-typed manifest naming a 3 MiB blob: were every signature
    // that proves, or every signature-like referrer, copied, a promotion would carry
    // them all into the new repository.
    let work = tempfile::tempdir().unwrap();
    let big = vec![b'x'; 3 * 1024 * 1024];
    std::fs::write(work.path().join("big.json"), &big).unwrap();
    let big_digest = refcat::digest::sha256(&big);
    let bundle = refcat::media_types::SIGSTORE_BUNDLE_V03;
    let source: refcat::reference::RepositoryName = "fixtures/alpine".parse().unwrap();
    // On distribution, whose blobs belong to a repository (zot links any blob it stores
    // into a repository that asks for it).
    let (registry, keys, scans, worker) = promote_after(Kind::Distribution, &[], |registry| {
        let client = registry.client();
        for artifact in artifact_digests(registry, "fixtures/alpine:3.19") {
            let signatures = tokio_run(client.referrers(&source, &artifact, Some(bundle))).unwrap();
            let manifest = tokio_run(client.get_manifest(
                &source,
                &refcat::reference::Target::Digest(signatures[0].digest.clone()),
            ))
            .unwrap();
            let refcat::oci::Manifest::Image(manifest) = manifest.manifest else {
                panic!("a bundle manifest is an image manifest");
            };
            let real = tokio_run(client.get_blob(&source, &manifest.layers[0].digest, None));
            std::fs::write(work.path().join("bundle.json"), real.unwrap()).unwrap();
            let attach = |file: &str, copy: usize| {
                run_ok(
                    std::process::Command::new(tool("oras"))
                        .current_dir(work.path())
                        .args(["attach", "--plain-http", "--artifact-type", bundle])
                        .args(["--annotation", &format!("copy={copy}")])
                        .arg(format!("{}/fixtures/alpine@{artifact}", registry.host))
                        .arg(format!("{file}:{bundle}")),
                );
            };
            for copy in 0..3 {
                attach("bundle.json", copy);
            }
            attach("big.json", 3);
        }
    });
    // Reused all the same: no scan, and refcat's own signature verifies there.
    assert_eq!(scanner_runs(scans.path()), (2, 2));
    assert_eq!(worker.metric("refcat_worker_reused_total"), 6);
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "promoted/alpine:3.19",
    ));
    // One signature per artifact came along, the first that proved it; the copies, the
    // look-alike and its blob stayed behind.
    let client = registry.client();
    let promoted: refcat::reference::RepositoryName = "promoted/alpine".parse().unwrap();
    for artifact in artifact_digests(&registry, "promoted/alpine:3.19") {
        let signatures = tokio_run(client.referrers(&promoted, &artifact, Some(bundle))).unwrap();
        assert_eq!(signatures.len(), 1, "{artifact}: {signatures:?}");
    }
    assert!(!tokio_run(client.blob_exists(&promoted, &big_digest)).unwrap());
}
