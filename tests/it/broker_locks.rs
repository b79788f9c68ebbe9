//! Locks that hold across worker replicas, taken from a real nats-server through the
//! library, as the worker takes them.

use std::time::{Duration, Instant};

use axum::http::Method;
use futures_util::TryStreamExt as _;
use refcat::artifact::{ArtifactBuilder, ArtifactLayer, BuiltArtifact};
use refcat::broker::{Broker, BrokerConfig};
use refcat::registry::{Client, ClientConfig, SubjectState};

use crate::common::faults::{Fault, FaultProxy, Rule};
use crate::common::nats::NatsServer;
use crate::common::published::{check_recovered, tokio_run};
use crate::common::replicas::{announce, replicas, wait_done};
use crate::common::{push_fixture, write_keys, Registry};

/// A runtime of its own and a broker connection made on it.
fn connect(nats: &NatsServer) -> (tokio::runtime::Runtime, Broker) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = runtime
        .block_on(Broker::connect(BrokerConfig::new(nats.url.clone())))
        .unwrap();
    (runtime, broker)
}

#[test]
fn a_lock_dropped_outside_its_runtime_is_released_at_once() {
    let nats = NatsServer::start();
    let (runtime, broker) = connect(&nats);
    let guard = runtime.block_on(broker.locks().lock("outside")).unwrap();
    // This thread runs no runtime: the guard must release the lock without one.
    drop(guard);
    let retaken = runtime.block_on(async {
        // Well within the 15 s a lock nobody releases or renews takes to free itself.
        tokio::time::timeout(Duration::from_secs(5), broker.locks().lock("outside")).await
    });
    assert!(retaken.is_ok(), "the lock was not released");
}

/// A small artifact referring to `image`, told apart by `text`.
fn note(image: &crate::fixture::BuiltImage, text: &str) -> BuiltArtifact {
    ArtifactBuilder::new("application/vnd.refcat.test.note")
        .subject(refcat::oci::Descriptor::new(
            &image.top.media_type,
            image.top.digest.clone(),
            image.top.bytes.len() as u64,
        ))
        .layer(ArtifactLayer {
            media_type: "text/plain".into(),
            data: bytes::Bytes::from(text.to_string()),
            title: "note.txt".into(),
        })
        .build()
}

/// A client for the registry at `host` whose tag-schema edits lock across `broker`'s
/// replicas.
fn client_locking_on(host: &str, broker: &Broker) -> Client {
    let mut config = ClientConfig::new(host);
    config.shared_locks = Some(broker.shared_locks());
    Client::new(config)
}

/// Takes every held lock away from its holder, as the broker does when a holder's
/// renewals stop reaching it; the number of locks there were.
async fn expire_every_lock(nats: &NatsServer) -> usize {
    let client = async_nats::connect(nats.url.as_str()).await.unwrap();
    let locks = async_nats::jetstream::new(client)
        .get_key_value("refcat-locks")
        .await
        .unwrap();
    let keys: Vec<String> = locks.keys().await.unwrap().try_collect().await.unwrap();
    for key in &keys {
        locks.delete(key).await.unwrap();
    }
    keys.len()
}

#[test]
fn a_tag_schema_edit_whose_lock_was_lost_writes_nothing_and_the_other_edit_survives() {
    let nats = NatsServer::start();
    // No referrers API: referrers are listed in the subject's tag-schema index, which
    // each edit reads, changes and writes back.
    let registry = Registry::distribution(None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (first, second) = (
            Broker::connect(BrokerConfig::new(nats.url.clone()))
                .await
                .unwrap(),
            Broker::connect(BrokerConfig::new(nats.url.clone()))
                .await
                .unwrap(),
        );
        let proxy = FaultProxy::start(&registry.host).await;
        let image = push_fixture(&registry.client(), "alpine").await;
        let (repository, subject) = (image.repository.clone(), image.top.digest.clone());
        let (ours, theirs) = (note(&image, "ours"), note(&image, "theirs"));
        // Both referrers are in the registry, unlisted: only the index is at stake.
        for artifact in [&ours, &theirs] {
            let one = std::slice::from_ref(artifact);
            let plain = registry.client();
            plain.push_artifact_blobs(&repository, one).await.unwrap();
            let _unlisted = plain.push_unlisted(&repository, one).await.unwrap();
        }
        // The first editor's read of the index is answered late: while it waits, its
        // lock passes to the second editor, which lists its own referrer.
        let tag = format!("/manifests/{}", subject.to_string().replace(':', "-"));
        proxy.inject(Rule::new(
            Method::GET,
            &tag,
            1,
            Fault::Late(Duration::from_secs(8)),
        ));
        let stalled = tokio::spawn({
            let (client, repository, subject) = (
                client_locking_on(&proxy.host, &first),
                repository.clone(),
                subject.clone(),
            );
            let listed = vec![ours.descriptor.clone()];
            async move {
                client
                    .add_to_tag_schema(&repository, &subject, listed, SubjectState::Existing)
                    .await
            }
        });
        while proxy.seen(Method::GET, &tag).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(expire_every_lock(&nats).await, 1);
        client_locking_on(&registry.host, &second)
            .add_to_tag_schema(
                &repository,
                &subject,
                vec![theirs.descriptor.clone()],
                SubjectState::Existing,
            )
            .await
            .unwrap();
        let refused = stalled.await.unwrap();
        let listed = |client: Client| {
            let (repository, subject) = (repository.clone(), subject.clone());
            async move {
                let referrers = client.referrers(&repository, &subject, None).await.unwrap();
                let mut digests: Vec<String> =
                    referrers.iter().map(|d| d.digest.to_string()).collect();
                digests.sort();
                digests
            }
        };
        assert_eq!(
            listed(registry.client()).await,
            [theirs.digest.to_string()],
            "the second editor's referrer is listed, and only it"
        );
        let error = refused.unwrap_err();
        assert!(error.to_string().contains("was lost"), "{error}");
        // Tried again, the edit reads the index as it is now: both are listed.
        client_locking_on(&registry.host, &first)
            .add_to_tag_schema(
                &repository,
                &subject,
                vec![ours.descriptor.clone()],
                SubjectState::Existing,
            )
            .await
            .unwrap();
        let mut both = vec![ours.digest.to_string(), theirs.digest.to_string()];
        both.sort();
        assert_eq!(listed(registry.client()).await, both);
    });
}

#[test]
fn a_replica_that_lost_a_subjects_lock_mid_scan_commits_nothing_and_its_retry_publishes_once() {
    let nats = NatsServer::start();
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let scans = tempfile::tempdir().unwrap();
    let (held_syft, hold) = crate::common::held_syft(scans.path());
    std::fs::write(&hold, "").unwrap();
    let workers = replicas(
        &registry.host,
        keys.path(),
        &nats,
        1,
        &[("REFCAT_SYFT", held_syft.as_os_str())],
    );
    let http = reqwest::blocking::Client::new();
    announce(&http, &workers[0], &registry, "alpine", "3.19");
    // Past CheckExisting, syft waits: the job holds its subjects' locks, and only those.
    let start = Instant::now();
    while workers[0].metric("refcat_worker_step_seconds_count{step=\"check-existing\"}") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job never began"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(tokio_run(expire_every_lock(&nats)) >= 1);
    let start = Instant::now();
    while !workers[0].log().contains("a lock could not be renewed") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the replica never found out that it lost its locks"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(&hold).unwrap();
    wait_done(&workers, 1, Duration::from_secs(300));
    let log = workers[0].log();
    assert!(
        log.contains("job failed; handed back") && log.contains("was lost"),
        "{log}"
    );
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/alpine:3.19",
    ));
}
