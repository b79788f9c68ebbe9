//! Caches that cannot go stale: a view asked for before its artifact existed, a
//! manifest deleted through a caching client, and a blob a registry lost.

use std::time::Duration;

use refcat::artifact::{ArtifactBuilder, ArtifactLayer};
use refcat::media_types::SYFT_JSON;
use refcat::reference::{RepositoryName, Target};
use refcat::web::{AppState, CacheConfig, ViewCache};
use serde_json::Value;

use crate::common::published::{code, output, stderr, subjects};
use crate::common::served::start_api;
use crate::common::{push_fixture, refcat_publish, write_keys, Kind, Registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sbom_asked_for_before_it_exists_shows_up_once_published() {
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    push_fixture(&registry.client(), "alpine").await;
    let reference = format!("{}/fixtures/alpine:3.19", registry.host);
    let digest = subjects(&registry.client(), &reference).await[0]
        .descriptor
        .digest
        .clone();
    let cache = CacheConfig {
        ttl: Duration::from_secs(1),
        ..CacheConfig::default()
    };
    let mut state = AppState::new(
        registry.cached_client(cache),
        refcat::trust::Trust::show_unverified(),
    );
    state.cache = ViewCache::new(cache);
    let base = start_api(state).await;
    let url = format!("{base}/v1/images/fixtures/alpine/releases/{digest}/sbom");
    let get = || async {
        let response = reqwest::get(&url).await.unwrap();
        let cache_control = response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .to_string();
        let view: Value = response.json().await.unwrap();
        let artifact = view["platforms"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()["artifact"]
            .clone();
        (cache_control, artifact)
    };

    let (cache_control, early) = get().await;
    assert_eq!(early, Value::Null, "nothing is published yet");
    assert!(!cache_control.contains("immutable"), "{cache_control}");

    let mut publish = refcat_publish(keys.path());
    publish.arg(format!("{}/fixtures/alpine@{digest}", registry.host));
    let out = output(publish).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, later) = get().await;
    assert!(
        later.is_string(),
        "the SBOM shows up after the TTL: {later}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_through_a_caching_client_drops_what_it_made_stale() {
    let registry = Registry::zot();
    let client = registry.cached_client(CacheConfig::default());
    let image = push_fixture(&client, "alpine").await;
    let repository: RepositoryName = "fixtures/alpine".parse().unwrap();
    let subject = image.top.digest.clone();
    let note = ArtifactBuilder::new(SYFT_JSON)
        .subject(refcat::oci::Descriptor::new(
            &image.top.media_type,
            subject.clone(),
            image.top.bytes.len() as u64,
        ))
        .layer(ArtifactLayer {
            media_type: SYFT_JSON.into(),
            data: bytes::Bytes::from_static(b"{}"),
            title: "sbom.syft.json".into(),
        })
        .build();
    client.push_artifact(&repository, &note).await.unwrap();
    // Read once so that everything below is cached.
    let tags = client.list_tags(&repository, None).await.unwrap();
    assert!(tags.iter().any(|t| t.as_str() == "3.19"));
    let tag = Target::Tag("3.19".parse().unwrap());
    assert_eq!(
        client.get_manifest(&repository, &tag).await.unwrap().digest,
        subject
    );
    let listed = client.referrers(&repository, &subject, None).await.unwrap();
    assert_eq!(listed.len(), 1);

    client
        .delete_manifest(&repository, &note.digest)
        .await
        .unwrap();
    client.delete_manifest(&repository, &subject).await.unwrap();

    let tags = client.list_tags(&repository, None).await.unwrap();
    assert!(!tags.iter().any(|t| t.as_str() == "3.19"), "{tags:?}");
    let gone = client.get_manifest(&repository, &tag).await;
    assert!(gone.is_err_and(|e| e.is_not_found()));
    let listed = client.referrers(&repository, &subject, None).await.unwrap();
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_the_registry_lost_is_pushed_again() {
    let registry = Registry::start(Kind::Distribution);
    let client = registry.client();
    let image = push_fixture(&client, "alpine").await;
    let repository: RepositoryName = "fixtures/alpine".parse().unwrap();
    let subject = refcat::oci::Descriptor::new(
        &image.top.media_type,
        image.top.digest.clone(),
        image.top.bytes.len() as u64,
    );
    let artifact = |body: &'static [u8]| {
        ArtifactBuilder::new(SYFT_JSON)
            .subject(subject.clone())
            .layer(ArtifactLayer {
                media_type: SYFT_JSON.into(),
                data: bytes::Bytes::from_static(body),
                title: "sbom.syft.json".into(),
            })
            .build()
    };
    let first = artifact(b"{\"n\":1}");
    client.push_artifact(&repository, &first).await.unwrap();
    // The shared empty config goes, as a registry GC would remove it.
    let config = &first.blobs[0].0;
    std::fs::remove_file(registry.blob_path(config)).unwrap();

    let second = artifact(b"{\"n\":2}");
    client.push_artifact(&repository, &second).await.unwrap();
    assert!(client.blob_exists(&repository, config).await.unwrap());
    let target = Target::Digest(second.digest.clone());
    assert!(client
        .head_manifest(&repository, &target)
        .await
        .unwrap()
        .is_some());
}

/// `refcat serve --key` checks a signature again once the cache TTL has passed: a
/// deleted signature stops counting without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_signature_stops_counting_after_the_cache_ttl() {
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    push_fixture(&registry.client(), "alpine").await;
    let reference = format!("{}/fixtures/alpine:3.19", registry.host);
    let mut publish = refcat_publish(keys.path());
    publish.args(["--platform", "linux/amd64", &reference]);
    let out = output(publish).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let port = crate::common::free_port();
    let mut serve = crate::common::refcat()
        .args(["serve", &registry.host, "--cache-ttl", "1", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--key")
        .arg(keys.path().join("refcat.pub"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v1/images/fixtures/alpine/vulnerabilities/3.19");
    let amd64 = || async {
        let start = std::time::Instant::now();
        loop {
            match reqwest::get(&url).await {
                Ok(response) => {
                    let view: Value = response.json().await.unwrap();
                    break view["platforms"]["linux/amd64"].clone();
                }
                Err(e) if start.elapsed() > Duration::from_secs(20) => {
                    panic!("serve never answered: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    };
    let before = amd64().await;
    assert_eq!(before["signature"]["verdict"], "verified", "{before}");

    let client = registry.client();
    let repository: RepositoryName = "fixtures/alpine".parse().unwrap();
    let grype: refcat::digest::Digest = before["artifact"].as_str().unwrap().parse().unwrap();
    for signature in client.referrers(&repository, &grype, None).await.unwrap() {
        client
            .delete_manifest(&repository, &signature.digest)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = amd64().await;
    serve.kill().unwrap();
    serve.wait().unwrap();
    assert_eq!(after["signature"]["verdict"], "unsigned", "{after}");
}
