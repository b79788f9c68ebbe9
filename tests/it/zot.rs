//! What only zot does: it acknowledges a manifest's `subject` with `OCI-Subject`, so
//! refcat writes no tag-schema index there; and its garbage collector deletes untagged
//! manifests, which must not take refcat's artifacts, signatures, releases or stored
//! aggregate with it.

use std::time::{Duration, Instant};

use axum::http::Method;

use crate::common;
use crate::common::faults::FaultProxy;
use crate::common::published::{
    check_recovered, code, listed, output, recorded_releases, tokio_run,
};
use crate::common::worker::{Worker, SECRET};
use crate::common::{
    cosign_verify, free_port, push_fixture, refcat_publish, write_keys, zot_events_to, Registry,
};
use refcat::media_types::OCI_INDEX;
use refcat::reference::{RepositoryName, Target};

#[tokio::test]
async fn zot_indexes_subjects_itself_so_refcat_writes_no_tag_schema_index() {
    let registry = Registry::zot();
    let proxy = FaultProxy::start(&registry.host).await;
    push_fixture(&registry.client(), "alpine").await;
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());

    let mut publish = refcat_publish(keys.path());
    publish.arg(format!("{}/fixtures/alpine:3.19", proxy.host));
    let out = output(publish).await;
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));

    // Two platform manifests, each with three artifacts and their three bundles, all
    // pushed by digest; not one request touched a `sha256-<hex>` tag-schema index.
    let puts = proxy.seen(Method::PUT, "/manifests/");
    assert_eq!(puts.len(), 12, "{puts:?}");
    assert!(puts.iter().all(|s| s.path.contains("/manifests/sha256:")));
    for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
        let tag_schema = proxy.seen(method.clone(), "/manifests/sha256-");
        assert!(tag_schema.is_empty(), "{method} {tag_schema:?}");
    }
    // What refcat checked was zot's referrers API, once per platform manifest.
    assert_eq!(proxy.seen(Method::GET, "/referrers/sha256:").len(), 2);

    // And zot lists them through that API, as oras sees it.
    for subject in common::published::subjects(
        &registry.client(),
        &format!("{}/fixtures/alpine:3.19", registry.host),
    )
    .await
    {
        let at = format!(
            "{}/fixtures/alpine@{}",
            registry.host, subject.descriptor.digest
        );
        let found = listed(&at);
        for format in ["syft-json", "spdx-json", "grype-json"] {
            assert_eq!(found.get(format).map(Vec::len), Some(1), "{at} {format}");
        }
    }
}

/// How many times zot's log says it began and then finished a GC sweep of `repository`,
/// counting only what was logged after byte `from`.
fn sweeps_since(registry: &Registry, from: usize, repository: &str) -> usize {
    let log = std::fs::read_to_string(registry.log_path()).unwrap_or_default();
    let mut began = false;
    let mut finished = 0;
    for line in log.get(from..).unwrap_or_default().lines() {
        if !line.contains(&format!("/{repository}\"")) {
            continue;
        }
        if line.contains("executing gc of orphaned blobs") {
            began = true;
        } else if began && line.contains("gc successfully completed") {
            finished += 1;
        }
    }
    finished
}

/// A GC'd registry (zot's own defaults but for the delays: untagged manifests go,
/// referrers of a deleted subject stay), a worker on its events storing the aggregate;
/// then a floating tag moves. After a full sweep of each repository that began after the
/// move, refcat's artifacts of both releases, their signatures, the release log and the
/// aggregate are all there, while an untagged manifest nothing refers to is gone.
#[test]
fn artifacts_releases_and_the_aggregate_survive_zot_gc() {
    let port = free_port();
    let events = format!("http://127.0.0.1:{port}/events");
    let registry = Registry::zot_with(|config, _| {
        zot_events_to(config, &events, SECRET);
        config["storage"]["gc"] = true.into();
        // Orphaned blobs wait 10 s, so none of refcat's uploads can go before the
        // manifest that lists them; untagged manifests wait 1 s.
        config["storage"]["gcDelay"] = "10s".into();
        config["storage"]["gcInterval"] = "1s".into();
        config["storage"]["retention"] = serde_json::json!({ "delay": "1s" });
    });
    let client = registry.client();
    let repository: RepositoryName = "fixtures/debian".parse().unwrap();

    // Pushed while no worker listens: the untagged control is seen by nobody but GC.
    let first = tokio_run(push_fixture(&client, "debian"));
    let rebuild = |version: &str| {
        let mut manifest: serde_json::Value = serde_json::from_slice(&first.top.bytes).unwrap();
        manifest["annotations"] =
            serde_json::json!({ "org.opencontainers.image.version": version });
        serde_json::to_vec(&manifest).unwrap()
    };
    let control = rebuild("untagged-control");
    let control_digest = refcat::digest::sha256(&control);
    tokio_run(client.put_manifest(
        &repository,
        &Target::Digest(control_digest.clone()),
        &first.top.media_type,
        control.into(),
    ))
    .unwrap();

    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let worker = Worker::start(
        &registry,
        keys.path(),
        port,
        &[("REFCAT_AGGREGATE_REPOSITORY", "refcat/catalog".as_ref())],
    );
    worker.wait_idle(Duration::from_secs(300));

    // The floating tags move to a rebuild; the worker hears of it from zot.
    let second = rebuild("12-rebuild");
    let second_digest = refcat::digest::sha256(&second);
    for tag in ["12", "bookworm"] {
        tokio_run(client.put_manifest(
            &repository,
            &Target::Tag(tag.parse().unwrap()),
            &first.top.media_type,
            second.clone().into(),
        ))
        .unwrap();
    }
    worker.wait_for("published", 2, Duration::from_secs(300));
    worker.wait_idle(Duration::from_secs(300));
    let aggregate = format!("{}/refcat/catalog:refcat-aggregate", registry.host);
    let start = Instant::now();
    while !cosign_verify(&keys.path().join("refcat.pub"), &aggregate).0 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no stored aggregate"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Wait for a whole sweep of both repositories that began after this point.
    let mark = std::fs::metadata(registry.log_path()).unwrap().len() as usize;
    let start = Instant::now();
    while sweeps_since(&registry, mark, "fixtures/debian") == 0
        || sweeps_since(&registry, mark, "refcat/catalog") == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "zot swept neither repository in 300 s after the tag moved"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // GC ran with teeth: the untagged control, which nothing lists, is gone.
    let gone = tokio_run(client.get_manifest(&repository, &Target::Digest(control_digest)));
    assert!(
        gone.as_ref().is_err_and(|e| e.is_not_found()),
        "GC kept the untagged control: {gone:?}"
    );

    // The release whose tags moved away stays, listed by the release log, and so do
    // both releases' artifacts and signatures (refcat verify checks every one).
    let log = tokio_run(recorded_releases(&client, &repository, keys.path()));
    let recorded: Vec<String> = log
        .iter()
        .map(|r| r.descriptor.digest.to_string())
        .collect();
    assert!(
        recorded.contains(&first.top.digest.to_string()),
        "{recorded:?}"
    );
    assert!(
        recorded.contains(&second_digest.to_string()),
        "{recorded:?}"
    );
    for digest in [&first.top.digest, &second_digest] {
        tokio_run(check_recovered(
            &registry,
            keys.path(),
            &format!("fixtures/debian@{digest}"),
        ));
        // cosign agrees on each artifact of the moved-away release, too.
        let at = format!("{}/fixtures/debian@{digest}", registry.host);
        for (format, artifacts) in listed(&at) {
            let signed = format!(
                "{}/fixtures/debian@{}",
                registry.host,
                artifacts[0]["digest"].as_str().unwrap()
            );
            let (ok, why) = cosign_verify(&keys.path().join("refcat.pub"), &signed);
            assert!(ok, "{format} of {digest} after GC: {why}");
        }
    }
    let (ok, why) = cosign_verify(&keys.path().join("refcat.pub"), &aggregate);
    assert!(ok, "the stored aggregate after GC: {why}");
    assert_eq!(worker.jobs("failed"), 0);
}

#[test]
fn a_release_log_past_its_head_limit_is_sealed_into_segments() {
    use refcat::records::release_log::{self, LogEdit};
    let registry = Registry::zot();
    let client = registry.client();
    let image = tokio_run(push_fixture(&client, "alpine"));
    let repository: RepositoryName = "fixtures/alpine".parse().unwrap();
    // Three real manifests recorded under three tags, with a head of one release.
    let manifests: Vec<_> = std::iter::once(&image.top)
        .chain(&image.platform_manifests)
        .map(|c| {
            refcat::oci::Descriptor::new(&c.media_type, c.digest.clone(), c.bytes.len() as u64)
        })
        .collect();
    let mut edit = LogEdit::new();
    for (i, manifest) in manifests.iter().enumerate() {
        let tag = format!("r{i}").parse().unwrap();
        edit.merge(
            &[(tag, manifest.clone())],
            &format!("2026-11-0{}T00:00:00Z", i + 1),
        );
    }
    let sealed = edit.seal(&repository, 1);
    for (digest, bytes) in sealed.segments() {
        let target = Target::Digest(digest.clone());
        tokio_run(client.put_manifest(&repository, &target, OCI_INDEX, bytes.clone())).unwrap();
    }
    let head_tag = Target::Tag(release_log::tag());
    tokio_run(client.put_manifest(&repository, &head_tag, OCI_INDEX, sealed.head().clone()))
        .unwrap();

    let head = tokio_run(client.get_manifest(&repository, &head_tag)).unwrap();
    let refcat::oci::Manifest::Index(head) = head.manifest else {
        panic!("the head is an index")
    };
    let segments = head
        .manifests
        .iter()
        .filter(|d| {
            d.annotations
                .contains_key(refcat::artifact::annotations::RELEASE_SEGMENT)
        })
        .count();
    assert_eq!((head.manifests.len(), segments), (3, 2), "{head:?}");
    // Read back whole, segments and all, where nothing is checked...
    let unchecked = refcat::trust::Trust::show_unverified();
    let read = tokio_run(release_log::read(&client, &repository, &unchecked))
        .unwrap()
        .unwrap();
    assert_eq!(read.get().index().manifests, edit.log().index().manifests);
    // ...and not at all by a reader that checks: nobody signed this head.
    let key = refcat::sign::KeyPair::generate().public_key();
    let own = refcat::trust::Trust::own(key);
    assert!(tokio_run(release_log::read(&client, &repository, &own))
        .unwrap()
        .is_none());
}
