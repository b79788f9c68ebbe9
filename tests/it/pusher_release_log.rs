//! The release log is refcat's only when its signature says so: a pusher cannot add a
//! release to a stream's history.

use std::time::Duration;

use refcat::media_types::OCI_INDEX;
use refcat::reference::{RepositoryName, Target};
use serde_json::Value;

use crate::common::published::tokio_run;
use crate::common::serving::ServeProcess;
use crate::common::worker::Worker;
use crate::common::{free_port, push_fixture, write_keys, Registry};

fn alpine() -> RepositoryName {
    "fixtures/alpine".parse().unwrap()
}

#[test]
fn a_pusher_cannot_add_a_release_to_the_history() {
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let client = registry.client();
    let image = tokio_run(push_fixture(&client, "alpine"));
    let worker = Worker::start(&registry, keys.path(), free_port(), &[]);
    worker.wait_idle(Duration::from_secs(300));
    drop(worker);

    // A pusher adds a release of their choosing to the log: a real manifest of the
    // repository, under a tag of stream 3.19 that never named it.
    let log = Target::Tag(refcat::reference::RELEASE_LOG_TAG.parse().unwrap());
    let head = tokio_run(client.get_manifest(&alpine(), &log)).unwrap();
    let mut index: Value = serde_json::from_slice(&head.bytes).unwrap();
    let injected = &image.platform_manifests[1];
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": injected.media_type,
            "digest": injected.digest.to_string(),
            "size": injected.bytes.len(),
            "annotations": {
                "dev.refcat.release.tags": "3.19.99",
                "dev.refcat.release.first-seen": "2020-01-01T00:00:00Z"
            }
        }));
    let bytes = bytes::Bytes::from(serde_json::to_vec(&index).unwrap());
    tokio_run(client.put_manifest(&alpine(), &log, OCI_INDEX, bytes)).unwrap();

    let public = keys.path().join("refcat.pub");
    let history = tokio_run(async {
        let serve = ServeProcess::start(&registry.host, &["--key", public.to_str().unwrap()]).await;
        serve.get("/v1/images/fixtures/alpine/history/3.19").await
    });
    assert_eq!(history.0, 200, "{}", history.1);
    let releases: Vec<&str> = history.1["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap())
        .collect();
    assert_eq!(releases, [image.top.digest.to_string()], "{}", history.1);
}

#[test]
fn a_pushers_log_naming_anything_stops_no_job_and_is_kept_referenced() {
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let client = registry.client();
    let image = tokio_run(push_fixture(&client, "alpine"));
    // A log nobody signed, whose one "segment" is an image manifest.
    let log = Target::Tag(refcat::reference::RELEASE_LOG_TAG.parse().unwrap());
    let named = &image.platform_manifests[1];
    let forged = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.dev.refcat.release-log.v1+json",
        "manifests": [{
            "mediaType": named.media_type,
            "digest": named.digest.to_string(),
            "size": named.bytes.len(),
            "annotations": { "dev.refcat.release.segment": "500" }
        }]
    });
    let bytes = bytes::Bytes::from(serde_json::to_vec(&forged).unwrap());
    let pushed = tokio_run(client.put_manifest(&alpine(), &log, OCI_INDEX, bytes)).unwrap();

    let worker = Worker::start(&registry, keys.path(), free_port(), &[]);
    let start = std::time::Instant::now();
    while worker.jobs("published") == 0 && worker.jobs("failed") == 0 {
        assert!(start.elapsed() < Duration::from_secs(300), "no job ended");
        std::thread::sleep(Duration::from_millis(200));
    }
    worker.wait_idle(Duration::from_secs(300));
    assert_eq!(worker.jobs("failed"), 0, "{}", worker.log());
    // The worker's own log replaced it, signed, and keeps it referenced.
    let head = tokio_run(client.get_manifest(&alpine(), &log)).unwrap();
    let index: Value = serde_json::from_slice(&head.bytes).unwrap();
    let superseded = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["dev.refcat.release.superseded"].is_string())
        .unwrap_or_else(|| panic!("{index}"));
    assert_eq!(superseded["digest"], pushed.digest.to_string());
    let releases = tokio_run(crate::common::published::recorded_releases(
        &client,
        &alpine(),
        keys.path(),
    ));
    let digests: Vec<String> = releases
        .iter()
        .map(|r| r.descriptor.digest.to_string())
        .collect();
    assert_eq!(digests, [image.top.digest.to_string()]);
}
