//! The stored catalog aggregate: the worker keeps a signed copy in a repository of its
//! own, `cosign verify` accepts it, and the API serves `/v1/vulnerabilities` from it
//! without walking the registry.

use std::time::{Duration, Instant};

use crate::common;
use crate::common::published::tokio_run;
use crate::common::served::start_api;
use crate::common::worker::Worker;
use crate::common::{free_port, push_fixture, Registry};
use refcat::catalog::aggregate::{self, AggregateData, StoredAggregate};
use refcat::catalog::repositories::Repositories;
use refcat::reference::{RepositoryName, Target};
use refcat::registry::RequestKind;
use refcat::trust::Trust;
use refcat::web::AppState;

/// Polls until the stored aggregate satisfies `done`; it.
fn stored_when(
    registry: &Registry,
    repository: &RepositoryName,
    own: &Trust,
    done: impl Fn(&AggregateData) -> bool,
) -> StoredAggregate {
    let start = Instant::now();
    loop {
        let stored = tokio_run(aggregate::stored(&registry.client(), repository, own)).unwrap();
        if let Some(found) = stored.filter(|found| done(found.document.get())) {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no stored aggregate"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_worker_stores_a_signed_aggregate_that_the_api_serves_without_a_walk() {
    let registry = Registry::distribution(None);
    let keys = tempfile::tempdir().unwrap();
    let pair = common::write_keys(keys.path());
    let client = registry.client();
    tokio_run(push_fixture(&client, "debian"));
    let repository: RepositoryName = "refcat/catalog".parse().unwrap();
    let worker = Worker::start(
        &registry,
        keys.path(),
        free_port(),
        &[
            ("REFCAT_AGGREGATE_REPOSITORY", "refcat/catalog".as_ref()),
            ("REFCAT_RECONCILE_INTERVAL", "2".as_ref()),
        ],
    );
    worker.wait_idle(Duration::from_secs(300));
    let own = Trust::own(pair.public_key());
    let first = stored_when(&registry, &repository, &own, |d| {
        !d.vulnerabilities.is_empty()
    });
    assert!(first.created.is_some());
    let live = |client| {
        tokio_run(aggregate::compute(
            &client,
            None,
            &own,
            &Repositories::new(Vec::new(), Some(repository.clone()), own.clone()),
        ))
        .unwrap()
    };
    assert_eq!(
        *first.document.get(),
        live(registry.client()),
        "stored = computed live"
    );
    let reference = format!("{}/refcat/catalog:refcat-aggregate", registry.host);
    let (verified, stderr) = common::cosign_verify(&keys.path().join("refcat.pub"), &reference);
    assert!(verified, "cosign verify {reference}: {stderr}");

    // A new image changes the catalog: the next walk publishes it and the aggregate is
    // replaced; the old one is deleted. An aggregate stored by a walk that saw the new
    // tags before their results (more tags, as many scanned) may come first.
    tokio_run(push_fixture(&client, "lang"));
    let before = first.document.get().vulnerabilities.len();
    let second = stored_when(&registry, &repository, &own, |d| {
        d.vulnerabilities.len() > before
    });
    worker.wait_idle(Duration::from_secs(300));
    assert_eq!(*second.document.get(), live(registry.client()));
    let first_digest = first.document.artifact().clone();
    let old = tokio_run(client.head_manifest(&repository, &Target::Digest(first_digest)));
    assert!(old.unwrap().is_none(), "the replaced aggregate is deleted");

    // The API reads it (signature required) with no catalog or tag listing.
    let served_client = registry.cached_client(Default::default());
    let counter = served_client.clone();
    let served_trust = Trust::checking(vec![pair.public_key()], true).unwrap();
    let mut state = AppState::new(served_client, served_trust.clone());
    state.repositories = Repositories::new(Vec::new(), Some(repository.clone()), served_trust);
    tokio_run(async {
        let base = start_api(state).await;
        let get = |path: &'static str| {
            let url = format!("{base}{path}");
            async move {
                let response = reqwest::get(url).await.unwrap();
                assert_eq!(response.status(), 200);
                response.json::<serde_json::Value>().await.unwrap()
            }
        };
        let served = get("/v1/vulnerabilities").await;
        assert_eq!(served["source"], "artifact");
        assert_eq!(
            served["totals"],
            serde_json::to_value(&second.document.get().totals).unwrap()
        );
        assert_eq!(
            served["vulnerabilities"],
            serde_json::to_value(&second.document.get().vulnerabilities).unwrap()
        );
        assert_eq!(counter.counter().of_kind(RequestKind::Catalog), 0);
        assert_eq!(counter.counter().of_kind(RequestKind::Tags), 0);
        // The directory leaves the aggregate's repository out.
        let directory = get("/v1/images").await;
        let names: Vec<&str> = directory["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["fixtures/app", "fixtures/debian"]);
    });
}
