//! `refcat worker` as users run it: the real binary, real registries, real syft and
//! grype. A push to docker-registry 2.8 notifies the worker, which publishes; webhooks
//! that are malformed, oversized or unauthenticated are refused and enqueue nothing; a
//! flood of duplicate events publishes once; a worker that dies mid-job (abort after a
//! step, or SIGKILL) is finished by the next start's reconcile walk; SIGTERM lets the
//! running job finish.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::published::check_recovered;
use crate::common::worker::{notified_worker, tagged_push_event, Worker, SECRET};
use crate::common::{free_port, push_fixture, write_keys, Kind, Registry};

/// A distribution notification of a manifest push of `digest` in `repository`.
fn push_event(repository: &str, digest: &str) -> String {
    tagged_push_event(repository, digest, "3.19")
}

/// Pushes the alpine fixture to a registry of `kind` that notifies a worker, waits until
/// the worker is idle, and checks that the push became a complete signed set.
fn alpine_published_from_its_event(kind: Kind) -> (Registry, tempfile::TempDir, Worker) {
    let (registry, keys, worker) = notified_worker(kind);
    let pushed = Instant::now();
    common::published::tokio_run(push_fixture(&registry.client(), "alpine"));
    let pushing = pushed.elapsed();
    let done = worker.wait_idle(Duration::from_secs(300));
    eprintln!(
        "{kind:?}: push {:.1} s; pushed to a complete signed set {:.1} s",
        pushing.as_secs_f64(),
        done.as_secs_f64()
    );
    common::published::tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/alpine:3.19",
    ));
    (registry, keys, worker)
}

#[test]
fn a_push_to_distribution_is_published_from_its_notification() {
    let (_registry, _keys, worker) = alpine_published_from_its_event(Kind::Distribution);
    // Two platforms were pushed by digest, then the index under two tags: four jobs
    // (each tag is recorded in the release log). The platforms' jobs settle first, so
    // the first tag's job publishes both platforms, and the others find them done.
    assert_eq!(worker.jobs("failed"), 0);
    assert_eq!((worker.jobs("published"), worker.jobs("complete")), (1, 3));
    // Step latencies: syft and grype once per platform, two commits per platform (the
    // SBOMs, then the Grype artifact).
    let steps = |step: &str| {
        worker.metric(&format!(
            "refcat_worker_step_seconds_count{{step=\"{step}\"}}"
        ))
    };
    assert_eq!((steps("syft"), steps("grype"), steps("commit")), (2, 2, 4));
    // refcat's own 14 pushes by digest (3 artifacts and 3 signatures per platform, and
    // the signature of each of the release log's two heads, one per tag recorded) came
    // back as notifications; each was recognised as a referrer and skipped.
    assert_eq!(worker.jobs("skipped"), 14);
}

#[test]
fn a_push_to_zot_is_published_from_its_cloudevent() {
    let (registry, keys, worker) = alpine_published_from_its_event(Kind::Zot);
    assert_eq!(worker.jobs("published"), 1);

    // A user's push with a real client: `oras copy` into a new repository, whose
    // referrers start empty.
    let copied = format!("{}/mine/alpine:3.19", registry.host);
    common::run_ok(std::process::Command::new(common::tool("oras")).args([
        "copy",
        "--from-plain-http",
        "--to-plain-http",
        &format!("{}/fixtures/alpine:3.19", registry.host),
        &copied,
    ]));
    worker.wait_for("published", 2, Duration::from_secs(300));
    worker.wait_idle(Duration::from_secs(300));
    common::published::tokio_run(check_recovered(&registry, keys.path(), "mine/alpine:3.19"));
    assert_eq!(worker.jobs("failed"), 0);
    // zot's events reached the worker through its authenticated intake, none refused.
    let webhooks = |status: u16| {
        worker.metric(&format!(
            "refcat_worker_webhooks_total{{status=\"{status}\"}}"
        ))
    };
    assert!(webhooks(202) >= 2, "{}", webhooks(202));
    assert_eq!((webhooks(400), webhooks(401), webhooks(403)), (0, 0, 0));
}

#[test]
fn bad_webhooks_are_refused_and_a_flood_of_duplicates_publishes_once() {
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    common::published::tokio_run(push_fixture(&registry.client(), "alpine"));
    let port = free_port();
    let worker = Worker::start(&registry, keys.path(), port, &[]);
    // The start-up walk found the image; wait for it, then push a second one for the flood.
    worker.wait_for("published", 1, Duration::from_secs(300));
    let debian = common::published::tokio_run(push_fixture(&registry.client(), "debian"));

    let http = reqwest::blocking::Client::new();
    let url = format!("{}/events", worker.base);
    let event = push_event("fixtures/debian", debian.top.digest.as_ref());
    let post = |body: &str, auth: Option<&str>| {
        let mut request = http
            .post(&url)
            .header(
                "content-type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .body(body.to_string());
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send().unwrap().status().as_u16()
    };
    let bearer = format!("Bearer {SECRET}");
    assert_eq!(post(&event, None), 401);
    assert_eq!(post(&event, Some("Bearer wrong")), 403);
    assert_eq!(post("{not json", Some(&bearer)), 400);
    assert_eq!(
        post(
            &push_event("../etc", debian.top.digest.as_ref()),
            Some(&bearer)
        ),
        400
    );
    assert_eq!(post(&"x".repeat(65 * 1024), Some(&bearer)), 413);
    for content_type in [Some("text/plain"), None] {
        let mut request = http
            .post(&url)
            .header("authorization", &bearer)
            .body(event.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        assert_eq!(request.send().unwrap().status(), 400, "{content_type:?}");
    }
    assert_eq!(http.get(&url).send().unwrap().status(), 405);
    for status in ["401", "403", "413", "405"] {
        let series = format!("refcat_worker_webhooks_total{{status=\"{status}\"}}");
        assert!(worker.metric(&series) >= 1, "{series} is counted");
    }
    let signed = refcat::worker::auth::sign("wrong-secret", event.as_bytes());
    let status = http
        .post(&url)
        .header("x-refcat-signature", format!("sha256={signed}"))
        .body(event.clone())
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 403);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(worker.metric("refcat_worker_queue_depth"), 0);
    assert_eq!(worker.metric("refcat_worker_jobs_running"), 0);
    assert_eq!(worker.jobs("published"), 1, "nothing was enqueued");

    // 1,000 events for one digest, HMAC-signed, from 8 senders at once.
    let signature = format!(
        "sha256={}",
        refcat::worker::auth::sign(SECRET, event.as_bytes())
    );
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..125 {
                    let status = http
                        .post(&url)
                        .header("x-refcat-signature", &signature)
                        .header("content-type", "application/json")
                        .body(event.clone())
                        .send()
                        .unwrap()
                        .status();
                    assert_eq!(status, 202);
                }
            });
        }
    });
    worker.wait_for("published", 2, Duration::from_secs(300));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(worker.jobs("published"), 2);
    assert_eq!(
        worker.jobs("complete"),
        0,
        "duplicates were dropped, not re-run"
    );
    assert_eq!(
        worker.metric("refcat_worker_webhooks_total{status=\"202\"}"),
        1000
    );
    common::published::tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/debian:12",
    ));

    // Authenticated events naming tags that never existed in this repository (the
    // flood's 3.19, and 9.9.9): the image is checked, the made-up tags are not
    // recorded; its real tag is.
    let digest = debian.top.digest.as_ref();
    for tag in ["9.9.9", "12"] {
        let event = tagged_push_event("fixtures/debian", digest, tag);
        assert_eq!(post(&event, Some(&bearer)), 202);
    }
    worker.wait_for("complete", 2, Duration::from_secs(120));
    let repository: refcat::reference::RepositoryName = "fixtures/debian".parse().unwrap();
    let log = common::published::tokio_run(common::published::recorded_releases(
        &registry.client(),
        &repository,
        keys.path(),
    ));
    let recorded: Vec<String> = log.into_iter().flat_map(|r| r.tags).collect();
    assert_eq!(recorded, ["12"]);
}

#[test]
fn a_worker_killed_mid_job_is_finished_by_the_next_start() {
    let (registry, keys) = common::keyed_distribution();
    common::published::tokio_run(push_fixture(&registry.client(), "debian"));
    // The start-up walk finds the image; the worker dies right after attaching the SBOMs.
    let port = free_port();
    let mut dying = Worker::start(
        &registry,
        keys.path(),
        port,
        &[("REFCAT_ABORT_AFTER", "attach".as_ref())],
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    while dying.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the worker did not reach the abort point"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(dying);
    let worker = Worker::start(&registry, keys.path(), free_port(), &[]);
    worker.wait_for("published", 1, Duration::from_secs(300));
    common::published::tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/debian:12",
    ));
}

/// Waits until `worker` reports at least `n` of `series`.
fn wait_metric(worker: &Worker, series: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while worker.metric(series) < n {
        assert!(Instant::now() < deadline, "{series} never reached {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigkill_mid_publish_then_restart_leaves_one_complete_set() {
    let (registry, keys) = common::keyed_distribution();
    let client = registry.client();
    common::published::tokio_run(push_fixture(&client, "alpine"));
    // The start-up walk queues the index; SIGKILL as soon as the first platform has a
    // referrer, while the rest of the set is still being made.
    let reference = format!("{}/fixtures/alpine:3.19", registry.host);
    let subjects = common::published::tokio_run(common::published::subjects(&client, &reference));
    let repository: refcat::reference::RepositoryName = "fixtures/alpine".parse().unwrap();
    let first_platform = subjects[0].descriptor.digest.clone();
    let mut first = Worker::start(&registry, keys.path(), free_port(), &[]);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let listed =
            common::published::tokio_run(client.referrers(&repository, &first_platform, None));
        if listed.is_ok_and(|l| !l.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "nothing was ever attached");
        std::thread::sleep(Duration::from_millis(10));
    }
    let finished = first.jobs("published");
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);
    assert_eq!(finished, 0, "killed before the job ended");
    let worker = Worker::start(&registry, keys.path(), free_port(), &[]);
    worker.wait_for("published", 1, Duration::from_secs(300));
    common::published::tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/alpine:3.19",
    ));
}

#[test]
fn sigterm_lets_the_running_job_finish() {
    let (registry, keys) = common::keyed_distribution();
    common::published::tokio_run(push_fixture(&registry.client(), "debian"));
    let mut worker = Worker::start(&registry, keys.path(), free_port(), &[]);
    wait_metric(&worker, "refcat_worker_jobs_running", 1);
    let term = std::process::Command::new("kill")
        .args(["-TERM", &worker.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = worker.child.wait().unwrap();
    assert!(status.success(), "the worker exits cleanly: {status:?}");
    // Nobody restarted it: the job it was running when told to stop finished.
    common::published::tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/debian:12",
    ));
}
