//! Worker replicas on one nats-server, as the scale-out tests run them: started,
//! told of pushes, and watched through their metrics and the broker's own report.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::nats::NatsServer;
use super::published::tokio_run;
use super::worker::{tagged_push_event, Worker, SECRET};
use super::{free_port, push_fixture, refcat_publishing, Registry};

/// `n` workers for the registry at `host` on the broker, with `env` besides.
pub fn replicas(
    host: &str,
    keys: &std::path::Path,
    nats: &NatsServer,
    n: usize,
    env: &[(&str, &OsStr)],
) -> Vec<Worker> {
    let mut all: Vec<(&str, &OsStr)> = vec![
        ("REFCAT_NATS_URL", nats.url.as_ref()),
        ("REFCAT_NATS_ACK_WAIT", "3s".as_ref()),
        ("REFCAT_CONCURRENCY", "1".as_ref()),
    ];
    all.extend_from_slice(env);
    (0..n)
        .map(|_| Worker::start_on(host, keys, free_port(), &all))
        .collect()
}

/// A metric summed over the replicas.
pub fn total(workers: &[Worker], series: &str) -> u64 {
    workers.iter().map(|w| w.metric(series)).sum()
}

/// Waits until the replicas have published `n` jobs and nothing waits, runs or is
/// pending on the broker.
pub fn wait_done(workers: &[Worker], n: u64, limit: Duration) {
    let start = Instant::now();
    let settled = || {
        total(workers, "refcat_worker_jobs_total{outcome=\"published\"}") >= n
            && workers[0].metric("refcat_worker_queue_depth") == 0
            && workers[0].metric("refcat_worker_jobs_ack_pending") == 0
            && total(workers, "refcat_worker_jobs_running") == 0
    };
    loop {
        if settled() {
            std::thread::sleep(Duration::from_millis(500));
            if settled() {
                return;
            }
        }
        assert!(
            start.elapsed() < limit,
            "the replicas were still busy after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// POSTs `body` (a distribution notification) to a worker's `/events`, as the registry
/// would.
pub fn send_event(
    http: &reqwest::blocking::Client,
    worker: &Worker,
    body: &str,
) -> reqwest::Result<reqwest::blocking::Response> {
    http.post(format!("{}/events", worker.base))
        .header(
            "content-type",
            "application/vnd.docker.distribution.events.v1+json",
        )
        .bearer_auth(SECRET)
        .body(body.to_string())
        .send()
}

/// [`send_event`]'s status (0 when the worker did not answer).
pub fn post(http: &reqwest::blocking::Client, worker: &Worker, body: &str) -> u16 {
    send_event(http, worker, body).map_or(0, |r| r.status().as_u16())
}

/// Asserts that the worker refuses `body` for now: 503, with Retry-After.
pub fn assert_unavailable(http: &reqwest::blocking::Client, worker: &Worker, body: &str) {
    let refused = send_event(http, worker, body).unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
}

/// The jobs stream's messages and its consumer's pending acks, as nats-server reports
/// them.
pub fn broker_holds(nats: &NatsServer) -> (u64, u64) {
    let jsz = nats.jsz();
    let streams = jsz["account_details"][0]["stream_detail"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let jobs = streams
        .iter()
        .find(|s| s["name"] == "REFCAT_JOBS")
        .unwrap_or_else(|| panic!("no jobs stream: {jsz}"));
    let pending = jobs["consumer_detail"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["num_ack_pending"].as_u64().unwrap_or(0))
        .sum();
    (jobs["state"]["messages"].as_u64().unwrap_or(0), pending)
}

/// Pushes the fixture `name` and tells `worker` of its push as `fixtures/<name>:tag`.
pub fn announce(
    http: &reqwest::blocking::Client,
    worker: &Worker,
    registry: &Registry,
    name: &str,
    tag: &str,
) {
    let image = tokio_run(push_fixture(&registry.client(), name));
    let event = tagged_push_event(image.repository.as_str(), image.top.digest.as_ref(), tag);
    assert_eq!(post(http, worker, &event), 202);
}

/// The index of the replica running a job, once one does.
pub fn running_replica(workers: &[Worker]) -> usize {
    let start = Instant::now();
    loop {
        if let Some(i) = workers
            .iter()
            .position(|w| w.metric("refcat_worker_jobs_running") > 0)
        {
            return i;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no replica took the job"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `refcat worker` says when it cannot start with `env`; a worker still running
/// after 30 s started, and fails the test.
pub fn refused_start(registry: &Registry, keys: &std::path::Path, env: &[(&str, &str)]) -> String {
    let mut worker = refcat_publishing("worker", keys);
    worker
        .args([
            &registry.host,
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env("REFCAT_WEBHOOK_SECRET", SECRET)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = worker.spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("started with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0), "started with {env:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
