//! The queue worker replicas share, on a real nats-server: how a job's attempts are
//! counted and spaced when it was held back, waited for a slot, or failed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use refcat::broker::{Broker, BrokerConfig};
use refcat::reference::Target;
use refcat::worker::queue::{Enqueued, JobQueue, Outcome, QueueConfig, SharedQueue};
use refcat::worker::Job;

use crate::common::faults::{Fault, FaultProxy, Rule};
use crate::common::nats::NatsServer;
use crate::common::published::check_recovered;
use crate::common::replicas::{announce, post, replicas, running_replica, wait_done};
use crate::common::{push_fixture, write_keys, Registry};

#[test]
fn a_settling_job_that_waited_past_its_time_for_a_slot_and_then_failed_is_retried_soon() {
    let nats = NatsServer::start();
    let registry = Registry::zot();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = runtime.block_on(FaultProxy::start(&registry.host));
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let scans = tempfile::tempdir().unwrap();
    let (held_syft, hold) = crate::common::held_syft(scans.path());
    std::fs::write(&hold, "").unwrap();
    let workers = replicas(
        &proxy.host,
        keys.path(),
        &nats,
        1,
        &[
            ("REFCAT_SYFT", held_syft.as_os_str()),
            ("REFCAT_SETTLE", "1s".as_ref()),
            ("REFCAT_RETRIES", "0".as_ref()),
        ],
    );
    let http = reqwest::blocking::Client::new();
    // The replica's one slot: alpine's job, held in syft.
    announce(&http, &workers[0], &registry, "alpine", "3.19");
    running_replica(&workers);
    // A platform manifest pushed by digest alone settles for a second before it may run.
    let debian = runtime.block_on(push_fixture(&registry.client(), "debian"));
    let platform = &debian.platform_manifests[0];
    let event = serde_json::json!({ "events": [{
        "id": "2", "action": "push",
        "target": {
            "mediaType": platform.media_type, "digest": platform.digest.to_string(),
            "repository": "fixtures/debian"
        }
    }]});
    assert_eq!(post(&http, &workers[0], &event.to_string()), 202);
    // Its first run fails: the registry answers its first read of the image with 500.
    let read = format!("/v2/fixtures/debian/manifests/{}", platform.digest);
    proxy.inject(Rule::new(Method::GET, &read, 1, Fault::Status(500, None)));
    // It waits for the slot well past its settle time, and is first fetched when due.
    std::thread::sleep(Duration::from_secs(3));
    std::fs::remove_file(&hold).unwrap();
    wait_done(&workers, 2, Duration::from_secs(180));
    // The failed run was handed back for the first backoff, and the next one published.
    let log = workers[0].log();
    assert_eq!(
        log.matches("job failed; handed back to run again in 2s")
            .count(),
        1,
        "{log}"
    );
    runtime.block_on(check_recovered(
        &registry,
        keys.path(),
        &format!("fixtures/debian@{}", platform.digest),
    ));
}

#[test]
fn a_job_that_panics_is_tried_again_and_the_shared_queue_becomes_idle() {
    let nats = NatsServer::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let broker = Broker::connect(BrokerConfig {
            ack_wait: Duration::from_secs(1),
            ..BrokerConfig::new(nats.url.clone())
        })
        .await
        .unwrap();
        let queue = SharedQueue::new(
            broker,
            QueueConfig {
                capacity: 10,
                concurrency: 1,
                attempts: 3,
                backoff: Duration::from_millis(100),
            },
        );
        let calls = Arc::new(AtomicUsize::new(0));
        let run = {
            let calls = calls.clone();
            move |_job: Job| {
                let calls = calls.clone();
                async move {
                    let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                    assert!(!first, "a bug in the job");
                    Ok(Outcome::Published)
                }
            }
        };
        let job = Job::new(
            "team/app".parse().unwrap(),
            Target::Tag("1.0".parse().unwrap()),
        );
        assert_eq!(queue.push_after(job, Duration::ZERO).await, Enqueued::Added);
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn({
            let queue = queue.clone();
            async move { queue.work(run, shutdown).await }
        });
        let idle = tokio::time::timeout(Duration::from_secs(30), async {
            while queue.outcomes().get(&Outcome::Published) != Some(&1)
                || !JobQueue::Shared(queue.clone()).idle().await
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            idle.is_ok(),
            "not idle after 30 s: {:?}, {} runs",
            queue.depth().await,
            calls.load(Ordering::SeqCst)
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        stop.send(true).unwrap();
        worker.await.unwrap();
    });
}
