//! Worker replicas sharing their jobs through a real nats-server (JetStream), against a
//! real registry: three `refcat worker` processes, concurrency 1 each, a 3 s ack wait.
//! No job is done twice or lost: not under a flood of identical events, not when a
//! replica or the broker is killed, not when the Grype DB changes.

use std::time::{Duration, Instant};

use crate::common::nats::NatsServer;
use crate::common::published::{check_recovered, tokio_run};
use crate::common::replicas::{
    announce, assert_unavailable, broker_holds, post, refused_start, replicas, running_replica,
    send_event, total, wait_done,
};
use crate::common::worker::{tagged_push_event, Worker};
use crate::common::{free_port, push_fixture, write_keys, Registry};

/// A nats-server, a zot, and a fresh key pair.
fn broker_and_zot() -> (NatsServer, Registry, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    (NatsServer::start(), Registry::zot(), keys)
}

#[test]
fn a_thousand_identical_events_across_three_replicas_publish_once() {
    let (nats, registry, keys) = broker_and_zot();
    // Started on an empty registry: only the events bring work.
    let workers = replicas(&registry.host, keys.path(), &nats, 3, &[]);
    let alpine = tokio_run(push_fixture(&registry.client(), "alpine"));
    let event = tagged_push_event("fixtures/alpine", alpine.top.digest.as_ref(), "3.19");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..8)
            .map(|sender| {
                let (workers, event) = (&workers, &event);
                scope.spawn(move || {
                    let http = reqwest::blocking::Client::new();
                    (0..125)
                        .map(|i| post(&http, &workers[(sender + i) % 3], event))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        senders
            .into_iter()
            .flat_map(|s| s.join().unwrap())
            .collect()
    });
    assert_eq!(statuses.len(), 1000);
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    wait_done(&workers, 1, Duration::from_secs(300));
    // One job ran; its replica published both platforms; the other events were the same
    // job, refused by the broker as it waited or ran, or dropped by its message id.
    assert_eq!(
        total(&workers, "refcat_worker_jobs_total{outcome=\"published\"}"),
        1
    );
    for format in ["syft-json", "spdx-json", "grype-json"] {
        let series = format!("refcat_worker_artifacts_total{{format=\"{format}\"}}");
        assert_eq!(
            total(&workers, &series),
            2,
            "{format}: one per platform manifest"
        );
    }
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/alpine:3.19",
    ));
}

/// The fixtures and three copies of alpine under other names: six images, ten
/// platform manifests.
const IMAGES: [(&str, &str, &str); 6] = [
    ("debian", "fixtures/debian", "12"),
    ("alpine", "fixtures/alpine", "3.19"),
    ("lang", "fixtures/app", "1.0.0"),
    ("alpine", "copies/alpine-1", "3.19"),
    ("alpine", "copies/alpine-2", "3.19"),
    ("alpine", "copies/alpine-3", "3.19"),
];
const PLATFORM_MANIFESTS: u64 = 10;

/// Pushes the images of [`IMAGES`] at once; their index or manifest digests.
fn push_images(registry: &Registry) -> Vec<String> {
    tokio_run(async {
        let client = registry.client();
        let pushes = IMAGES.iter().map(|(fixture, repository, tag)| {
            let client = client.clone();
            async move {
                let mut image =
                    crate::fixture::build(&crate::common::testdata().join("images").join(fixture))
                        .unwrap();
                image.repository = repository.parse().unwrap();
                image.tags = vec![tag.parse().unwrap()];
                crate::fixture::push(&client, &image).await.unwrap();
                image.top.digest.to_string()
            }
        });
        futures_util::future::join_all(pushes).await
    })
}

/// Every image of [`IMAGES`] has exactly one signed set per platform manifest.
fn every_image_has_one_set(registry: &Registry, keys: &std::path::Path) {
    for (_, repository, tag) in IMAGES {
        tokio_run(check_recovered(
            registry,
            keys,
            &format!("{repository}:{tag}"),
        ));
    }
}

fn artifacts_of_each_format(workers: &[Worker]) -> [u64; 3] {
    ["syft-json", "spdx-json", "grype-json"].map(|f| {
        total(
            workers,
            &format!("refcat_worker_artifacts_total{{format=\"{f}\"}}"),
        )
    })
}

#[test]
fn a_push_through_zots_nats_sink_alone_covers_every_image_once() {
    let nats = NatsServer::start();
    let url = nats.url.clone();
    let registry = Registry::zot_with(move |config, _| {
        config["extensions"] = serde_json::json!({ "events": {
            "enable": true,
            "sinks": [{ "type": "nats", "address": url, "channel": "zot.events", "timeout": "5s" }]
        }});
    });
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    // No webhooks: zot's events reach the replicas through the broker only.
    let workers = replicas(
        &registry.host,
        keys.path(),
        &nats,
        3,
        &[
            ("REFCAT_NATS_EVENTS_SUBJECT", "zot.events".as_ref()),
            ("REFCAT_NO_WEBHOOKS", "true".as_ref()),
        ],
    );
    push_images(&registry);
    wait_done(&workers, IMAGES.len() as u64, Duration::from_secs(600));
    // Published: each platform manifest once, by its index's job or by its own (zot
    // sends an event for each manifest pushed by digest), whichever took its lock first.
    assert_eq!(artifacts_of_each_format(&workers), [PLATFORM_MANIFESTS; 3]);
    assert_eq!(
        total(&workers, "refcat_worker_jobs_total{outcome=\"failed\"}"),
        0
    );
    assert_eq!(
        broker_holds(&nats),
        (0, 0),
        "no job left in the stream or pending"
    );
    let busy = workers.iter().filter(|w| w.jobs("published") > 0).count();
    assert!(busy >= 2, "the work was shared: {busy} replicas published");
    every_image_has_one_set(&registry, keys.path());
}

#[test]
fn a_replica_killed_mid_scan_is_finished_by_another_and_sigterm_finishes_its_job() {
    let (nats, registry, keys) = broker_and_zot();
    let scans = tempfile::tempdir().unwrap();
    // syft waits 6 s before it scans: long past the 3 s ack wait.
    let slow_syft = crate::common::observed_syft(scans.path(), 6);
    let mut workers = replicas(
        &registry.host,
        keys.path(),
        &nats,
        3,
        &[("REFCAT_SYFT", slow_syft.as_os_str())],
    );
    let http = reqwest::blocking::Client::new();
    announce(&http, &workers[0], &registry, "debian", "12");
    let holder = running_replica(&workers);
    let mut killed = workers.remove(holder);
    let _ = killed.child.kill(); // SIGKILL: no goodbye, its job not acked
    let _ = killed.child.wait();
    wait_done(&workers, 1, Duration::from_secs(300));
    assert!(total(&workers, "refcat_worker_jobs_redelivered_total") >= 1);
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/debian:12",
    ));

    // SIGTERM while a job runs: the replica stops fetching, finishes the job, acks it.
    announce(&http, &workers[0], &registry, "alpine", "3.19");
    let holder = running_replica(&workers);
    let mut stopping = workers.remove(holder);
    let redelivered = total(&workers, "refcat_worker_jobs_redelivered_total");
    unsafe { libc::kill(stopping.child.id() as i32, libc::SIGTERM) };
    let status = stopping.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_secs(5)); // past the ack wait: nothing comes back
    assert_eq!(
        total(&workers, "refcat_worker_jobs_redelivered_total"),
        redelivered
    );
    assert_eq!(broker_holds(&nats), (0, 0));
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/alpine:3.19",
    ));
}

#[test]
fn a_broker_killed_with_jobs_queued_loses_none_and_repeats_none() {
    let (mut nats, registry, keys) = broker_and_zot();
    let scans = tempfile::tempdir().unwrap();
    let slow_syft = crate::common::observed_syft(scans.path(), 3);
    let workers = replicas(
        &registry.host,
        keys.path(),
        &nats,
        3,
        &[("REFCAT_SYFT", slow_syft.as_os_str())],
    );
    let digests = push_images(&registry);
    let http = reqwest::blocking::Client::new();
    for (i, ((_, repository, tag), digest)) in IMAGES.iter().zip(&digests).enumerate() {
        assert_eq!(
            post(
                &http,
                &workers[i % 3],
                &tagged_push_event(repository, digest, tag)
            ),
            202
        );
    }
    // Three run, three wait: then the broker dies, and comes back on its store.
    running_replica(&workers);
    nats.kill();
    std::thread::sleep(Duration::from_secs(2));
    nats.restart();
    wait_done(&workers, IMAGES.len() as u64, Duration::from_secs(600));
    assert_eq!(
        total(&workers, "refcat_worker_jobs_total{outcome=\"published\"}"),
        IMAGES.len() as u64,
        "every job published once; a job whose ack was lost ran again and found it complete"
    );
    assert_eq!(artifacts_of_each_format(&workers), [PLATFORM_MANIFESTS; 3]);
    assert_eq!(broker_holds(&nats), (0, 0));
    every_image_has_one_set(&registry, keys.path());
}

#[test]
fn a_broker_that_is_down_is_said_at_start_and_answered_with_503_during_intake() {
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let closed = format!("nats://127.0.0.1:{}", free_port());
    let said = refused_start(&registry, keys.path(), &[("REFCAT_NATS_URL", &closed)]);
    assert!(said.contains(&closed), "{said}");

    let mut nats = NatsServer::start();
    let workers = replicas(&registry.host, keys.path(), &nats, 1, &[]);
    // A replica that asks for another stream than the one the broker holds is refused.
    let said = refused_start(
        &registry,
        keys.path(),
        &[
            ("REFCAT_NATS_URL", &nats.url),
            ("REFCAT_QUEUE_CAPACITY", "7"),
        ],
    );
    assert!(
        said.contains("REFCAT_JOBS with another configuration"),
        "{said}"
    );
    let alpine = tokio_run(push_fixture(&registry.client(), "alpine"));
    let event = tagged_push_event("fixtures/alpine", alpine.top.digest.as_ref(), "3.19");
    let http = reqwest::blocking::Client::new();
    nats.kill();
    assert_unavailable(&http, &workers[0], &event);
    nats.restart();
    let start = Instant::now();
    while post(&http, &workers[0], &event) != 202 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no 202 after the broker returned"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_done(&workers, 1, Duration::from_secs(300));
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/alpine:3.19",
    ));
}

#[test]
fn three_replicas_walk_once_per_interval() {
    let (nats, registry, keys) = broker_and_zot();
    let workers = replicas(
        &registry.host,
        keys.path(),
        &nats,
        3,
        &[("REFCAT_RECONCILE_INTERVAL", "2s".as_ref())],
    );
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(9));
    let walks = total(&workers, "refcat_worker_walks_total");
    let elapsed = start.elapsed().as_secs_f64();
    // About one at start and one per 2 s interval; three replicas on their own would
    // make three times as many.
    let expected = elapsed / 2.0 + 1.0;
    assert!(
        (walks as f64) >= expected - 2.0 && (walks as f64) <= expected + 1.0,
        "{walks} walks in {elapsed:.1} s"
    );
}

#[test]
fn a_new_grype_db_rescans_each_image_once_across_the_replicas() {
    let (nats, registry, keys) = broker_and_zot();
    tokio_run(push_fixture(&registry.client(), "alpine"));
    let db = crate::common::own_grype_db();
    let workers = replicas(
        &registry.host,
        keys.path(),
        &nats,
        3,
        &[("GRYPE_DB_CACHE_DIR", db.path().as_os_str())],
    );
    // Each replica's walk at start finds alpine lacking; the broker keeps one job.
    wait_done(&workers, 1, Duration::from_secs(300));
    let before = artifacts_of_each_format(&workers);
    assert_eq!(before, [2, 2, 2]);
    let syft_runs = total(&workers, "refcat_worker_step_seconds_count{step=\"syft\"}");
    crate::common::import_newer_grype_db(db.path());
    let start = Instant::now();
    while artifacts_of_each_format(&workers)[2] < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no re-scan after the DB changed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5)); // time for a second fan-out, were there one
    assert_eq!(
        artifacts_of_each_format(&workers),
        [2, 2, 4],
        "one new Grype artifact per platform"
    );
    assert_eq!(
        total(&workers, "refcat_worker_step_seconds_count{step=\"syft\"}"),
        syft_runs,
        "syft did not run"
    );
}

#[test]
fn a_job_that_keeps_failing_is_ended_and_does_not_block_its_image() {
    let (nats, registry, keys) = broker_and_zot();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = runtime.block_on(crate::common::faults::FaultProxy::start(&registry.host));
    let debian = runtime.block_on(push_fixture(&registry.client(), "debian"));
    // Every manifest read of the image fails: each attempt of its job does.
    proxy.inject(crate::common::faults::Rule::new(
        axum::http::Method::GET,
        "/v2/fixtures/debian/manifests/",
        usize::MAX,
        crate::common::faults::Fault::Status(500, None),
    ));
    let workers = replicas(
        &proxy.host,
        keys.path(),
        &nats,
        2,
        &[
            ("REFCAT_JOB_RETRIES", "1".as_ref()),
            ("REFCAT_RETRIES", "0".as_ref()),
        ],
    );
    let http = reqwest::blocking::Client::new();
    let event = tagged_push_event("fixtures/debian", debian.top.digest.as_ref(), "12");
    assert_eq!(post(&http, &workers[0], &event), 202);
    let start = Instant::now();
    while total(&workers, "refcat_worker_jobs_dead_total") < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job was never ended"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        total(&workers, "refcat_worker_jobs_total{outcome=\"failed\"}"),
        1
    );
    assert_eq!(
        broker_holds(&nats),
        (0, 0),
        "nothing of it left on the broker"
    );
    // The registry recovers; the same event is taken again (once the broker's short
    // duplicate window for its message id is past), and the image published.
    proxy.clear();
    let start = Instant::now();
    loop {
        let answer: serde_json::Value = send_event(&http, &workers[1], &event)
            .unwrap()
            .json()
            .unwrap();
        if answer["accepted"] == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never taken again: {answer}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    wait_done(&workers, 1, Duration::from_secs(300));
    runtime.block_on(check_recovered(
        &registry,
        keys.path(),
        "fixtures/debian:12",
    ));
}

/// The Grype DB builds each of `image`'s platform manifests was scanned with, newest
/// Grype artifact first.
fn grype_db_builds(registry: &Registry, image: &str) -> Vec<Vec<String>> {
    let reference = format!("{}/{image}", registry.host);
    tokio_run(crate::common::published::existing_per_platform(
        &registry.client(),
        &reference,
    ))
    .iter()
    .map(|existing| {
        let mut built: Vec<String> = existing
            .of(refcat::artifact::Format::GrypeJson)
            .iter()
            .filter_map(|g| g.annotation(refcat::artifact::annotations::GRYPE_DB_BUILT))
            .map(String::from)
            .collect();
        built.sort_unstable_by(|a, b| b.cmp(a));
        built
    })
    .collect()
}

#[test]
fn a_replica_with_an_older_grype_db_hands_a_rescan_on_and_uses_up_no_attempt() {
    let (nats, registry, keys) = broker_and_zot();
    tokio_run(push_fixture(&registry.client(), "alpine"));
    let (newer, older) = (crate::common::own_grype_db(), crate::common::own_grype_db());
    // syft waits while the file `hold` exists: the replica with the newer DB stays busy.
    let scans = tempfile::tempdir().unwrap();
    let (held_syft, hold) = crate::common::held_syft(scans.path());
    // One attempt per job: a hand-on that used one up would end the re-scan dead.
    let mut workers = replicas(
        &registry.host,
        keys.path(),
        &nats,
        1,
        &[
            ("GRYPE_DB_CACHE_DIR", newer.path().as_os_str()),
            ("REFCAT_SYFT", held_syft.as_os_str()),
            ("REFCAT_JOB_RETRIES", "0".as_ref()),
        ],
    );
    wait_done(&workers, 1, Duration::from_secs(300));
    std::fs::write(&hold, "").unwrap();
    let http = reqwest::blocking::Client::new();
    announce(&http, &workers[0], &registry, "debian", "12");
    running_replica(&workers);
    // The other replica has the older DB, and covers alpine, which its walk at start
    // finds complete by that DB.
    workers.extend(replicas(
        &registry.host,
        keys.path(),
        &nats,
        1,
        &[
            ("GRYPE_DB_CACHE_DIR", older.path().as_os_str()),
            ("REFCAT_REPOSITORY", "fixtures/alpine".as_ref()),
            ("REFCAT_JOB_RETRIES", "0".as_ref()),
        ],
    ));
    crate::common::import_newer_grype_db(newer.path());
    // The only free replica is offered the re-scan, and hands it on.
    let start = Instant::now();
    while workers[1].jobs("deferred") < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the replica with the older DB was never offered the re-scan"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::remove_file(&hold).unwrap();
    let start = Instant::now();
    while grype_db_builds(&registry, "fixtures/alpine:3.19")
        .iter()
        .any(|b| b.first().map(String::as_str) != Some("2026-11-08T00:00:00Z"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no re-scan with the newer DB: {:?}, {} dead",
            grype_db_builds(&registry, "fixtures/alpine:3.19"),
            total(&workers, "refcat_worker_jobs_dead_total")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_done(&workers, 3, Duration::from_secs(300));
    assert_eq!(total(&workers, "refcat_worker_jobs_dead_total"), 0);
    assert_eq!(
        total(&workers, "refcat_worker_jobs_total{outcome=\"failed\"}"),
        0
    );
    assert_eq!(
        workers[1].metric("refcat_worker_artifacts_total{format=\"grype-json\"}"),
        0,
        "the older DB judged nothing"
    );
    for builds in grype_db_builds(&registry, "fixtures/alpine:3.19") {
        assert_eq!(builds, ["2026-11-08T00:00:00Z", "2026-11-01T00:00:00Z"]);
    }
    assert_eq!(broker_holds(&nats), (0, 0));
}

#[test]
fn a_full_stream_is_answered_with_503_and_retry_after() {
    let (nats, registry, keys) = broker_and_zot();
    let scans = tempfile::tempdir().unwrap();
    let (held_syft, hold) = crate::common::held_syft(scans.path());
    std::fs::write(&hold, "").unwrap();
    // The stream holds one job: the one the replica runs, held in syft.
    let workers = replicas(
        &registry.host,
        keys.path(),
        &nats,
        1,
        &[
            ("REFCAT_QUEUE_CAPACITY", "1".as_ref()),
            ("REFCAT_SYFT", held_syft.as_os_str()),
        ],
    );
    let http = reqwest::blocking::Client::new();
    announce(&http, &workers[0], &registry, "alpine", "3.19");
    running_replica(&workers);
    let debian = tokio_run(push_fixture(&registry.client(), "debian"));
    let event = tagged_push_event("fixtures/debian", debian.top.digest.as_ref(), "12");
    assert_unavailable(&http, &workers[0], &event);
    // Once the running job is done, the stream takes the event again.
    std::fs::remove_file(&hold).unwrap();
    wait_done(&workers, 1, Duration::from_secs(300));
    assert_eq!(post(&http, &workers[0], &event), 202);
    wait_done(&workers, 2, Duration::from_secs(300));
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/debian:12",
    ));
}
