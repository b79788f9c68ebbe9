//! The aggregate the worker folds from the repository summaries it keeps, changed only
//! by what changed, equals the one a full walk of every default and floating tag
//! computes: after a new image, a moved tag, a deleted tag and a new Grype DB.

use std::time::{Duration, Instant};

use refcat::catalog::aggregate::{self, AggregateData, VerifiedAggregate};
use refcat::catalog::repositories::Repositories;
use refcat::catalog::summary::RepositorySummary;
use refcat::reference::RepositoryName;
use refcat::trust::Trust;

use crate::common::published::tokio_run;
use crate::common::worker::Worker;
use crate::common::{self, free_port, push_fixture, Registry};

const STORED_IN: &str = "refcat/catalog";

/// The aggregate a full walk computes now, from the publisher's own results.
fn walked(registry: &Registry, own: &Trust) -> AggregateData {
    let stored_in: RepositoryName = STORED_IN.parse().unwrap();
    let covered = Repositories::new(Vec::new(), Some(stored_in), own.clone());
    tokio_run(aggregate::compute(&registry.client(), None, own, &covered)).unwrap()
}

/// The aggregate folded from the stored summaries of every repository now; `None` while
/// one has none.
fn folded(registry: &Registry, own: &Trust) -> Option<AggregateData> {
    let client = registry.client();
    let stored_in: RepositoryName = STORED_IN.parse().unwrap();
    let covered = Repositories::new(Vec::new(), Some(stored_in.clone()), own.clone());
    let listed = tokio_run(covered.list(&client))
        .unwrap()
        .into_repositories();
    let mut summaries = Vec::new();
    for repository in listed {
        let stored = tokio_run(RepositorySummary::stored(
            &client,
            &stored_in,
            &repository,
            own,
        ))
        .unwrap()?;
        summaries.push(stored.document.verified().expect("signed by the worker"));
    }
    Some(
        VerifiedAggregate::of_summaries(&summaries, None)
            .data()
            .clone(),
    )
}

/// The stored aggregate's document now.
fn stored(registry: &Registry, own: &Trust) -> Option<AggregateData> {
    let stored_in: RepositoryName = STORED_IN.parse().unwrap();
    tokio_run(aggregate::stored(&registry.client(), &stored_in, own))
        .unwrap()
        .map(|s| s.document.get().clone())
}

/// Waits until the worker has caught up with `what` (the stored aggregate differs from
/// `before` and the folded summaries and the stored aggregate both equal a full walk);
/// the aggregate then.
fn settled(
    registry: &Registry,
    own: &Trust,
    worker: &Worker,
    before: Option<&AggregateData>,
    what: &str,
) -> AggregateData {
    let start = Instant::now();
    loop {
        let now = stored(registry, own);
        let full = walked(registry, own);
        let fold = folded(registry, own);
        if now.as_ref() != before && now.as_ref() == Some(&full) && fold.as_ref() == Some(&full) {
            return full;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "after {what}, the aggregates disagree:\nwalked: {full:?}\nfolded: {fold:?}\nstored: {now:?}\n{}",
            worker.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_folded_aggregate_equals_a_full_walk_after_every_kind_of_change() {
    let registry = Registry::distribution(None);
    let keys = tempfile::tempdir().unwrap();
    let pair = common::write_keys(keys.path());
    let own = Trust::own(pair.public_key());
    let client = registry.client();
    tokio_run(push_fixture(&client, "debian"));
    // The newer DB below adds an advisory on alpine's busybox.
    tokio_run(push_fixture(&client, "alpine"));
    let db = common::own_grype_db();
    let worker = Worker::start(
        &registry,
        keys.path(),
        free_port(),
        &[
            ("REFCAT_AGGREGATE_REPOSITORY", STORED_IN.as_ref()),
            ("REFCAT_RECONCILE_INTERVAL", "2".as_ref()),
            ("REFCAT_DB_CHECK_INTERVAL", "1s".as_ref()),
            ("GRYPE_DB_CACHE_DIR", db.path().as_os_str()),
        ],
    );
    let first = settled(&registry, &own, &worker, None, "the first image");
    assert!(!first.vulnerabilities.is_empty(), "{first:?}");

    // A new image in a new repository.
    let lang = tokio_run(push_fixture(&client, "lang"));
    let second = settled(&registry, &own, &worker, Some(&first), "a new image");
    assert!(second.vulnerabilities.len() > first.vulnerabilities.len());

    // A moved tag: debian's `bookworm` now names the app image.
    common::run_ok(std::process::Command::new(common::tool("oras")).args([
        "copy",
        "--from-plain-http",
        "--to-plain-http",
        &format!("{}/fixtures/app:1.0.0", registry.host),
        &format!("{}/fixtures/debian:bookworm", registry.host),
    ]));
    let third = settled(&registry, &own, &worker, Some(&second), "a moved tag");

    assert!(
        third.vulnerabilities.iter().any(|v| v
            .affected
            .get("fixtures/debian")
            .is_some_and(|t| t.contains("bookworm"))),
        "{third:?}"
    );

    // A deleted tag: debian's `bookworm`, its default tag (the newest image); `12` is
    // the default again.
    let debian: RepositoryName = "fixtures/debian".parse().unwrap();
    let bookworm = tokio_run(client.head_manifest(
        &debian,
        &refcat::reference::Target::Tag("bookworm".parse().unwrap()),
    ))
    .unwrap()
    .unwrap();
    tokio_run(client.delete_manifest(&debian, &bookworm.digest)).unwrap();
    let fourth = settled(&registry, &own, &worker, Some(&third), "a deleted tag");
    assert!(
        fourth.vulnerabilities.iter().all(|v| v
            .affected
            .get("fixtures/debian")
            .is_none_or(|t| !t.contains("bookworm"))),
        "{fourth:?}"
    );

    // A new Grype DB, which adds an advisory.
    common::import_newer_grype_db(db.path());
    let fifth = settled(&registry, &own, &worker, Some(&fourth), "a new Grype DB");
    assert!(
        fifth
            .vulnerabilities
            .iter()
            .any(|v| v.id == "CVE-2026-0001"),
        "{fifth:?}"
    );
    drop(lang);

    // Every change after the first was folded from the summaries, and no fold ever
    // disagreed with the walk.
    assert!(worker.metric("refcat_worker_aggregates_total{how=\"folded\"}") >= 4);
    assert!(
        !worker.log().contains("differs from a full walk"),
        "{}",
        worker.log()
    );
}
