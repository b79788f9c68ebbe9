//! A `refcat worker` run as users run it, for the worker tests.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, refcat_publishing, write_keys, Kind, Registry};

/// The shared secret the test workers take webhooks with.
pub const SECRET: &str = "webhook-s3cret";

/// A running `refcat worker`, killed on drop.
pub struct Worker {
    pub child: Child,
    pub base: String,
    /// Where its standard output (the exposure lines) goes.
    pub stdout: tempfile::NamedTempFile,
    /// Where its log goes: printed when the test fails.
    stderr: tempfile::NamedTempFile,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- the log of the worker at {} ---", self.base);
            eprint!("{}", self.log());
        }
    }
}

impl Worker {
    /// Starts the worker for `registry` on `port` with the key in `keys`.
    pub fn start(
        registry: &Registry,
        keys: &std::path::Path,
        port: u16,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Worker {
        Self::start_on(&registry.host, keys, port, env)
    }

    /// [`Worker::start`] for the registry at `host` (a proxy in front of one, say).
    pub fn start_on(
        host: &str,
        keys: &std::path::Path,
        port: u16,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Worker {
        Self::start_adjusted(host, keys, port, env, |_| {})
    }

    /// [`Worker::start_on`] with its command changed by `adjust` before it runs.
    pub fn start_adjusted(
        host: &str,
        keys: &std::path::Path,
        port: u16,
        env: &[(&str, &std::ffi::OsStr)],
        adjust: impl FnOnce(&mut std::process::Command),
    ) -> Worker {
        let mut cmd = refcat_publishing("worker", keys);
        if !env.iter().any(|(name, _)| *name == "REFCAT_NO_WEBHOOKS") {
            cmd.env("REFCAT_WEBHOOK_SECRET", SECRET);
        }
        cmd.args([host, "--listen", &format!("127.0.0.1:{port}")])
            .args(["--max-body-kib", "64", "--db-check-interval", "1"])
            .env("REFCAT_RECONCILE_INTERVAL", "0")
            .envs(env.iter().copied());
        let stdout = tempfile::NamedTempFile::new().unwrap();
        let stderr = tempfile::NamedTempFile::new().unwrap();
        cmd.stdout(Stdio::from(stdout.reopen().unwrap()))
            .stderr(Stdio::from(stderr.reopen().unwrap()));
        adjust(&mut cmd);
        let child = cmd.spawn().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::blocking::get(format!("{base}/healthz")).is_err() {
            assert!(
                Instant::now() < deadline,
                "worker not up after 20 s: {}",
                std::fs::read_to_string(stderr.path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Worker {
            child,
            base,
            stdout,
            stderr,
        }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// A metric's value (0 when absent).
    pub fn metric(&self, series: &str) -> u64 {
        let text = reqwest::blocking::get(format!("{}/metrics", self.base))
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// How many jobs have ended with `outcome` (published, complete, skipped, failed).
    pub fn jobs(&self, outcome: &str) -> u64 {
        self.metric(&format!(
            "refcat_worker_jobs_total{{outcome=\"{outcome}\"}}"
        ))
    }

    /// Waits until jobs have been published and nothing waits or runs any more.
    pub fn wait_idle(&self, limit: Duration) -> Duration {
        let start = Instant::now();
        let idle = || {
            self.jobs("published") > 0
                && self.metric("refcat_worker_queue_depth") == 0
                && self.metric("refcat_worker_jobs_running") == 0
        };
        loop {
            if idle() {
                let at = start.elapsed();
                std::thread::sleep(Duration::from_millis(500));
                if idle() {
                    return at;
                }
            }
            assert!(
                start.elapsed() < limit,
                "the worker was still busy after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `n` jobs have ended with `outcome`.
    pub fn wait_for(&self, outcome: &str, n: u64, limit: Duration) -> Duration {
        let start = Instant::now();
        while self.jobs(outcome) < n {
            assert!(
                start.elapsed() < limit,
                "no {n} {outcome} jobs after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        start.elapsed()
    }
}

/// A registry of `kind` that sends every push to a worker started for it, with a fresh
/// key pair: docker-registry 2.8 through its notifications, zot through its events
/// extension's HTTP sink (CloudEvents), each with the bearer secret.
pub fn notified_worker(kind: Kind) -> (Registry, tempfile::TempDir, Worker) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/events");
    let registry = match kind {
        Kind::Distribution => Registry::distribution_notifying(&url, SECRET),
        Kind::Zot => Registry::zot_notifying(&url, SECRET),
    };
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let worker = Worker::start(&registry, keys.path(), port, &[]);
    (registry, keys, worker)
}

/// A distribution notification of a push of the index `digest` as `repository:tag`.
pub fn tagged_push_event(repository: &str, digest: &str, tag: &str) -> String {
    serde_json::json!({ "events": [{
        "id": "1", "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest,
            "repository": repository, "tag": tag
        }
    }]})
    .to_string()
}
