//! Webhooks from senders other than the registries the tests run: a Harbor-shaped
//! `PUSH_ARTIFACT` (from the fixture in `testdata/webhooks/`) with Harbor's static auth
//! header becomes the image's signed set; a walk-only worker needs no secret and takes no
//! webhooks; JSON logs are JSON.

use std::time::Duration;

use crate::common::published::{check_recovered, tokio_run};
use crate::common::worker::{Worker, SECRET};
use crate::common::{free_port, push_fixture, refcat, testdata, write_keys, Registry};

/// Harbor's default-format push fixture, naming `repository`, `tag` and `digest`.
fn harbor_push(repository: &str, tag: &str, digest: &str) -> String {
    let text = std::fs::read(testdata().join("webhooks/harbor-push-artifact.json")).unwrap();
    let mut event: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let resource = &mut event["event_data"]["resources"][0];
    resource["digest"] = digest.into();
    resource["tag"] = tag.into();
    resource["resource_url"] = format!("harbor.example/{repository}:{tag}").into();
    event["event_data"]["repository"]["repo_full_name"] = repository.into();
    event.to_string()
}

#[test]
fn a_harbor_push_artifact_webhook_becomes_a_signed_set() {
    let registry = Registry::distribution(None);
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    // Started on an empty registry: its walk finds nothing, so only the webhook can
    // bring the image.
    let worker = Worker::start(&registry, keys.path(), free_port(), &[]);
    let alpine = tokio_run(push_fixture(&registry.client(), "alpine"));
    let event = harbor_push("fixtures/alpine", "3.19", alpine.top.digest.as_ref());
    let http = reqwest::blocking::Client::new();
    let post = |auth: &str| {
        http.post(format!("{}/events", worker.base))
            .header("content-type", "application/json")
            // Harbor sends its policy's auth header as it is.
            .header("authorization", auth)
            .body(event.clone())
            .send()
            .unwrap()
    };
    assert_eq!(post("not-the-secret").status(), 403);
    let accepted = post(SECRET);
    assert_eq!(accepted.status(), 202);
    let summary: serde_json::Value = accepted.json().unwrap();
    assert_eq!(summary["accepted"], 1, "{summary}");
    worker.wait_idle(Duration::from_secs(300));
    assert_eq!(worker.jobs("published"), 1);
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/alpine:3.19",
    ));
}

#[test]
fn a_walk_only_worker_needs_no_secret_and_takes_no_webhooks() {
    let registry = Registry::distribution(None);
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    tokio_run(push_fixture(&registry.client(), "debian"));

    let mut without = crate::common::refcat_publishing("worker", keys.path());
    without
        .arg(&registry.host)
        .env_remove("REFCAT_WEBHOOK_SECRET");
    let out = without.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("--no-webhooks"), "{said}");

    let worker = Worker::start(
        &registry,
        keys.path(),
        free_port(),
        &[("REFCAT_NO_WEBHOOKS", "true".as_ref())],
    );
    worker.wait_idle(Duration::from_secs(300));
    assert_eq!(worker.jobs("published"), 1);
    let event = harbor_push(
        "fixtures/debian",
        "12",
        &format!("sha256:{}", "a".repeat(64)),
    );
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/events", worker.base))
        .header("content-type", "application/json")
        .header("authorization", SECRET)
        .body(event)
        .send()
        .unwrap();
    assert_eq!(response.status(), 404);
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/debian:12",
    ));
}

#[test]
fn json_logs_are_one_object_a_line() {
    let out = refcat()
        .args([
            "--log-format",
            "json",
            "discover",
            "--retries",
            "1",
            "--timeout",
            "1s",
        ])
        .arg(format!("127.0.0.1:{}/fixtures/debian:12", free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    assert!(lines.iter().any(|l| l["level"] == "WARN"), "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(
        last["message"].as_str().unwrap().contains("cannot reach"),
        "{last}"
    );
    assert_eq!(last["exit_code"], 5);
}
