//! Registries that misbehave: 429 with `Retry-After`, 5xx, timeouts, broken connections,
//! corrupted, oversized and invalid documents, missing blobs, an unreachable host, refused
//! deletes. A fault-injecting proxy sits in front of a real docker-registry 2.8; the
//! library must retry what is safe to retry, and otherwise fail with an error that says
//! what happened.

use std::time::Duration;

use crate::common;
use crate::common::faults::{Fault, FaultProxy, Rule};
use crate::common::published::{code, listed, output, stderr};
use crate::common::{push_fixture, refcat, refcat_publish, Registry};
use crate::fixture::BuiltImage;
use axum::http::Method;
use refcat::digest::Digest;
use refcat::media_types::{OCI_INDEX, OCI_MANIFEST};
use refcat::reference::Target;
use refcat::registry::{Client, ClientConfig, RegistryError};

/// A registry with the Debian fixture, and a proxy in front of it.
pub async fn setup() -> (Registry, FaultProxy, BuiltImage) {
    let registry = Registry::distribution(None);
    let image = push_fixture(&registry.client(), "debian").await;
    let proxy = FaultProxy::start(&registry.host).await;
    (registry, proxy, image)
}

/// A client through the proxy, with a tiny backoff so that waits come from `Retry-After`.
fn client(proxy: &FaultProxy, timeout: Duration) -> Client {
    let mut config = ClientConfig::new(proxy.host.clone());
    config.request_timeout = timeout;
    config.initial_backoff = Duration::from_millis(10);
    Client::new(config)
}

fn tag_target(image: &BuiltImage) -> Target {
    Target::Tag(image.tags[0].clone())
}

/// `refcat discover` through the proxy, run off the runtime so the proxy keeps serving.
async fn discover(proxy: &FaultProxy, image: &BuiltImage, extra: &[&str]) -> (u8, String) {
    let reference = format!("{}/{}:{}", proxy.host, image.repository, image.tags[0]);
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        refcat()
            .arg("discover")
            .args(&extra)
            .arg(reference)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code().unwrap() as u8,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_the_wait_the_registry_asks_for() {
    let (_registry, proxy, image) = setup().await;
    proxy.inject(Rule::new(
        Method::GET,
        "/tags/list",
        2,
        Fault::Status(429, Some(1)),
    ));
    let tags = client(&proxy, Duration::from_secs(5))
        .list_tags(&image.repository, None)
        .await
        .unwrap();
    assert_eq!(tags.len(), 2);
    let seen = proxy.seen(Method::GET, "/tags/list");
    assert_eq!(seen.len(), 3, "two refusals, then success");
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(950),
            "Retry-After: 1 was not honoured; the retry came after {gap:?} (backoff is 10 ms)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_retried_and_a_persistent_one_is_reported() {
    let (_registry, proxy, image) = setup().await;
    let client = client(&proxy, Duration::from_secs(5));
    proxy.inject(Rule::new(
        Method::GET,
        "/manifests/",
        1,
        Fault::Status(502, None),
    ));
    let manifest = client
        .get_manifest(&image.repository, &tag_target(&image))
        .await
        .unwrap();
    assert_eq!(manifest.digest, image.top.digest);
    assert_eq!(proxy.seen(Method::GET, "/manifests/").len(), 2);

    proxy.inject(Rule::new(
        Method::GET,
        "/manifests/",
        100,
        Fault::Status(503, None),
    ));
    let err = client
        .get_manifest(&image.repository, &tag_target(&image))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Unavailable {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(proxy.seen(Method::GET, "/manifests/").len(), 2 + 4);
    assert!(
        err.to_string().contains("HTTP 503 after 4 attempts"),
        "{err}"
    );

    // --retries counts the tries after the first.
    let (code, stderr) = discover(&proxy, &image, &["--retries", "1"]).await;
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("HTTP 503 after 2 attempts"), "{stderr}");
    assert!(stderr.contains("try again later"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_times_out_and_is_retried() {
    let (_registry, proxy, image) = setup().await;
    let client = client(&proxy, Duration::from_millis(300));
    proxy.inject(Rule::new(
        Method::GET,
        "/manifests/",
        1,
        Fault::Delay(Duration::from_secs(2)),
    ));
    client
        .get_manifest(&image.repository, &tag_target(&image))
        .await
        .unwrap();
    assert_eq!(proxy.seen(Method::GET, "/manifests/").len(), 2);

    proxy.inject(Rule::new(
        Method::GET,
        "/manifests/",
        100,
        Fault::Delay(Duration::from_secs(2)),
    ));
    let err = client
        .get_manifest(&image.repository, &tag_target(&image))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Timeout { attempts: 4, .. }),
        "{err:?}"
    );

    let (code, stderr) = discover(&proxy, &image, &["--timeout", "1s", "--retries", "0"]).await;
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("did not answer"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_survive_a_failed_upload_start_and_manifest_put() {
    let (registry, proxy, image) = setup().await;
    let client = client(&proxy, Duration::from_secs(5));
    proxy.inject(Rule::new(
        Method::POST,
        "/blobs/uploads/",
        1,
        Fault::Status(500, None),
    ));
    proxy.inject(Rule::new(
        Method::PUT,
        "/manifests/",
        1,
        Fault::Status(503, None),
    ));
    let blob = bytes::Bytes::from_static(b"{\"pushed\":\"through faults\"}");
    let digest = refcat::digest::sha256(&blob);
    client
        .push_blob(&image.repository, &digest, blob)
        .await
        .unwrap();
    let retagged = Target::Tag("retagged".parse().unwrap());
    client
        .put_manifest(
            &image.repository,
            &retagged,
            &image.top.media_type,
            image.top.bytes.clone(),
        )
        .await
        .unwrap();
    assert_eq!(proxy.seen(Method::POST, "/blobs/uploads/").len(), 2);
    assert_eq!(proxy.seen(Method::PUT, "/manifests/").len(), 2);
    // The registry itself holds both, as seen without the proxy.
    let direct = registry.client();
    assert!(direct
        .blob_exists(&image.repository, &digest)
        .await
        .unwrap());
    let head = direct
        .head_manifest(&image.repository, &retagged)
        .await
        .unwrap()
        .expect("the retagged manifest exists");
    assert_eq!(head.digest, image.top.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_upload_whose_answer_was_lost_is_checked_not_failed() {
    let (registry, proxy, image) = setup().await;
    let client = client(&proxy, Duration::from_secs(1));
    // The registry completes the upload; its answer comes after the client gave up.
    proxy.inject(Rule::new(
        Method::PUT,
        "/blobs/uploads/",
        1,
        Fault::Late(Duration::from_secs(3)),
    ));
    let blob = bytes::Bytes::from_static(b"{\"answer\":\"lost\"}");
    let digest = refcat::digest::sha256(&blob);
    client
        .push_blob(&image.repository, &digest, blob)
        .await
        .unwrap();
    // Checked with a HEAD, not uploaded again.
    assert_eq!(proxy.seen(Method::PUT, "/blobs/uploads/").len(), 1);
    assert!(!proxy
        .seen(Method::HEAD, &format!("/blobs/{digest}"))
        .is_empty());
    assert!(registry
        .client()
        .blob_exists(&image.repository, &digest)
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_refused_for_a_listed_manifest_is_pushed_again_then_reported() {
    let (registry, proxy, image) = setup().await;
    let client = client(&proxy, Duration::from_secs(5));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": image.top.media_type, "digest": image.top.digest.to_string(), "size": image.top.bytes.len() }],
    });
    let bytes = bytes::Bytes::from(index.to_string());
    let push = |tag: &str| {
        let target = Target::Tag(tag.parse().unwrap());
        let (client, repository, bytes) = (client.clone(), image.repository.clone(), bytes.clone());
        async move {
            client
                .put_manifest(&repository, &target, OCI_INDEX, bytes)
                .await
        }
    };
    // As docker-registry 2.8 answers while it rewrites the listed manifest's link.
    let refused = Fault::Error(400, "MANIFEST_BLOB_UNKNOWN");
    proxy.inject(Rule::new(
        Method::PUT,
        "/manifests/listing",
        2,
        refused.clone(),
    ));
    push("listing").await.unwrap();
    assert_eq!(proxy.seen(Method::PUT, "/manifests/listing").len(), 3);
    let listed = registry
        .client()
        .head_manifest(&image.repository, &Target::Tag("listing".parse().unwrap()))
        .await
        .unwrap();
    assert!(listed.is_some(), "the third push reached the registry");

    // A manifest that stays unknown is reported after the fourth try.
    proxy.inject(Rule::new(Method::PUT, "/manifests/missing", 10, refused));
    let error = push("missing").await.unwrap_err();
    assert!(error.has_code("MANIFEST_BLOB_UNKNOWN"), "{error}");
    assert!(
        error.to_string().contains("MANIFEST_BLOB_UNKNOWN"),
        "{error}"
    );
    assert_eq!(proxy.seen(Method::PUT, "/manifests/missing").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_or_cut_content_is_refused() {
    let (_registry, proxy, image) = setup().await;
    let client = client(&proxy, Duration::from_secs(5));
    let by_digest = Target::Digest(image.top.digest.clone());
    for target in [tag_target(&image), by_digest] {
        proxy.inject(Rule::new(Method::GET, "/manifests/", 1, Fault::Corrupt));
        let err = client
            .get_manifest(&image.repository, &target)
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Digest { .. }), "{err:?}");
        assert!(err.to_string().contains("does not match"), "{err}");
    }
    let layer = &image.blobs[0];
    proxy.inject(Rule::new(Method::GET, "/blobs/", 1, Fault::Corrupt));
    let err = client
        .get_blob(&image.repository, &layer.digest, None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Digest { .. }), "{err:?}");

    // A connection cut mid-body is retried; one that keeps breaking is reported.
    let before = proxy.seen(Method::GET, "/blobs/").len();
    proxy.inject(Rule::new(Method::GET, "/blobs/", 1, Fault::Truncate));
    let bytes = client
        .get_blob(&image.repository, &layer.digest, None)
        .await
        .unwrap();
    assert_eq!(bytes, layer.bytes);
    assert_eq!(proxy.seen(Method::GET, "/blobs/").len(), before + 2);
    proxy.inject(Rule::new(Method::GET, "/blobs/", 100, Fault::Truncate));
    let err = client
        .get_blob(&image.repository, &layer.digest, None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Interrupted { .. }), "{err:?}");
    assert!(
        err.to_string().contains("broke while reading GET blob"),
        "{err}"
    );
    assert_eq!(proxy.seen(Method::GET, "/blobs/").len(), before + 2 + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_invalid_documents_are_refused() {
    let (_registry, proxy, image) = setup().await;
    let mut config = ClientConfig::new(proxy.host.clone());
    config.max_manifest_bytes = 64 * 1024;
    let client = Client::new(config);

    let mut huge = vec![b' '; 100 * 1024];
    huge.extend_from_slice(b"{}");
    proxy.inject(Rule::new(
        Method::GET,
        "/manifests/",
        1,
        Fault::Replace(huge, OCI_MANIFEST),
    ));
    let err = client
        .get_manifest(&image.repository, &tag_target(&image))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::TooLarge { limit: 65536, .. }),
        "{err:?}"
    );

    for (path, body) in [
        ("/manifests/", &b"{\"schemaVersion\": 2, \"layers\": "[..]),
        ("/manifests/", &b"[1, 2, 3]"[..]),
        ("/tags/list", &b"{\"name\": \"x\", \"tags\": \"12\"}"[..]),
    ] {
        proxy.inject(Rule::new(
            Method::GET,
            path,
            1,
            Fault::Replace(body.to_vec(), OCI_MANIFEST),
        ));
        let err = if path == "/tags/list" {
            client
                .list_tags(&image.repository, None)
                .await
                .map(|_| ())
                .unwrap_err()
        } else {
            client
                .get_manifest(&image.repository, &tag_target(&image))
                .await
                .map(|_| ())
                .unwrap_err()
        };
        assert!(
            matches!(err, RegistryError::InvalidResponse { .. }),
            "{path}: {err:?}"
        );
    }

    proxy.inject(Rule::new(
        Method::GET,
        "/manifests/",
        1,
        Fault::Replace(b"not json at all".to_vec(), OCI_MANIFEST),
    ));
    let (code, stderr) = discover(&proxy, &image, &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("invalid response"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_blob_or_manifest_is_not_found() {
    let (registry, _proxy, image) = setup().await;
    let client = registry.client();
    let absent = refcat::digest::sha256(b"never pushed");
    let err = client
        .get_blob(&image.repository, &absent, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::NotFound { code, .. } if code == "BLOB_UNKNOWN"),
        "{err:?}"
    );
    assert!(err.to_string().contains(absent.as_ref()), "{err}");
    assert!(!client
        .blob_exists(&image.repository, &absent)
        .await
        .unwrap());
    let err = client
        .get_manifest(&image.repository, &Target::Digest(absent.clone()))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_is_reported_after_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let mut config = ClientConfig::new(host.clone());
    config.initial_backoff = Duration::from_millis(10);
    let err = Client::new(config).list_repositories().await.unwrap_err();
    assert!(matches!(err, RegistryError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("cannot reach {host}")),
        "{err}"
    );
    let out = tokio::task::spawn_blocking(move || {
        refcat()
            .args(["discover", "--retries", "0"])
            .arg(format!("{host}/fixtures/debian:12"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_on_a_registry_that_refuses_deletes_publishes_and_keeps_the_old_artifact() {
    let (registry, proxy, image) = setup().await;
    let keys = tempfile::tempdir().unwrap();
    common::write_keys(keys.path());
    let reference = format!("{}/{}:{}", proxy.host, image.repository, image.tags[0]);
    let mut first = refcat_publish(keys.path());
    first.arg(&reference);
    let first = output(first).await;
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let old_grype: Digest = listed(&reference)["grype-json"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Deletes switched off, as docker-registry answers without `storage.delete`.
    proxy.inject(Rule::new(
        Method::DELETE,
        "/manifests/",
        100,
        Fault::Status(405, None),
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await; // a later `created`
    let mut again = refcat_publish(keys.path());
    again.args(["--force", "--keep", "1"]).arg(&reference);
    let again = output(again).await;
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(
        stderr(&again).contains("does not allow deletes"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        proxy.seen(Method::DELETE, "/manifests/").len(),
        1,
        "no more deletes after the first refusal"
    );
    let kept = registry
        .client()
        .head_manifest(&image.repository, &Target::Digest(old_grype))
        .await
        .unwrap();
    assert!(kept.is_some(), "the refused delete kept the old artifact");
    // Without the referrers API it had already left the tag-schema listing (the first
    // step of a delete), so the listing names only the new artifact.
    assert_eq!(listed(&reference)["grype-json"].len(), 1);
    let mut verify = refcat();
    verify
        .args(["verify", "--key"])
        .arg(keys.path().join("refcat.pub"))
        .arg(&reference);
    let verify = output(verify).await;
    assert_eq!(code(&verify), 0, "{}", stderr(&verify));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_registry_is_found_out_before_any_scan() {
    let (registry, proxy, _debian) = setup().await;
    push_fixture(&registry.client(), "alpine").await;
    // As distribution answers in read-only mode.
    proxy.inject(Rule::new(
        Method::POST,
        "/blobs/uploads/",
        100,
        Fault::Error(405, "UNSUPPORTED"),
    ));
    let keys = tempfile::tempdir().unwrap();
    common::write_keys(keys.path());
    let launcher = tempfile::tempdir().unwrap();
    let mut publish = refcat_publish(keys.path());
    publish
        .env("REFCAT_SYFT", common::observed_syft(launcher.path(), 0))
        .args(["--output", "json"])
        .arg(format!("{}/fixtures/debian:12", proxy.host))
        .arg(format!("{}/fixtures/alpine:3.19", proxy.host));
    let out = output(publish).await;
    assert_ne!(code(&out), 0);
    let reported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<&str> = reported
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error"].as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 2, "both images were tried: {reported}");
    assert!(
        errors.iter().all(|e| e.contains("cannot push")),
        "{errors:?}"
    );
    assert!(
        !launcher.path().join("pid").exists(),
        "syft ran for a registry refcat cannot write to"
    );
    assert!(
        stderr(&out).contains("2 of 2 images failed"),
        "{}",
        stderr(&out)
    );
}
