//! The job queue, behind one abstraction with two implementations: [`LocalQueue`], the
//! default, shares work among one process's runners; [`SharedQueue`] shares it among
//! worker replicas through a NATS JetStream stream (`--nats-url`).

mod local;
mod shared;

use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::sync::watch;

pub use local::LocalQueue;
pub use shared::SharedQueue;

use super::Job;

/// What became of a pushed job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued.
    Added,
    /// The same image already waits or runs.
    Duplicate,
    /// The queue is full (or shutting down); the sender should retry later.
    Full,
    /// The broker did not take it (down or restarting); the sender should retry later.
    Unavailable,
}

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Artifacts were attached.
    Published,
    /// Everything was already there.
    Complete,
    /// Not an image (a referrer, an artifact): nothing to publish for.
    Skipped,
    /// Every attempt failed; the reconcile loop will find it again.
    Failed,
    /// Not run here: this replica's Grype DB is older than the one the job was judged
    /// by; another replica, or this one once its DB is current, runs it.
    Deferred,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Published => "published",
            Outcome::Complete => "complete",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
            Outcome::Deferred => "deferred",
        }
    }
}

/// Sizes and retry policy.
#[derive(Clone, Copy, Debug)]
pub struct QueueConfig {
    /// Jobs that may wait.
    pub capacity: usize,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Attempts per job.
    pub attempts: u32,
    /// First wait between attempts; it doubles, up to [`MAX_RETRY_BACKOFF`].
    pub backoff: Duration,
}

/// The longest wait between two attempts of a job, however many it has.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(300);

impl QueueConfig {
    /// How long to wait after the failed attempt `attempt` (1 for the first, 0 taken
    /// as 1): the backoff, doubled for each attempt before it, at most
    /// [`MAX_RETRY_BACKOFF`].
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(MAX_RETRY_BACKOFF)
    }
}

/// One attempt of a job. A panic in it is a failed attempt like any other: the job is
/// tried again, and the runner and the queue's counts live on. (Nothing of the attempt
/// is used after it unwinds, hence `AssertUnwindSafe`.)
async fn attempt(run: impl Future<Output = Result<Outcome, String>>) -> Result<Outcome, String> {
    std::panic::AssertUnwindSafe(run)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("the job panicked: {what}"))
        })
}

/// Jobs ended, by outcome.
#[derive(Debug, Default)]
pub(super) struct Outcomes(std::sync::Mutex<std::collections::BTreeMap<Outcome, u64>>);

impl Outcomes {
    pub(super) fn count(&self, outcome: Outcome) {
        *self.0.lock().expect("outcomes").entry(outcome).or_default() += 1;
    }

    pub(super) fn snapshot(&self) -> std::collections::BTreeMap<Outcome, u64> {
        self.0.lock().expect("outcomes").clone()
    }
}

/// Jobs waiting and running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    /// Waiting: for every replica, with a shared queue.
    pub waiting: u64,
    /// Running in this process.
    pub running: u64,
    /// Delivered and not yet acked, across replicas (shared queue only).
    pub ack_pending: u64,
}

/// The worker's queue.
#[derive(Clone, Debug)]
pub enum JobQueue {
    /// This process only.
    Local(LocalQueue),
    /// Every replica on the broker.
    Shared(SharedQueue),
}

impl JobQueue {
    /// Queues `job` unless the same image waits or runs already (in any replica).
    pub async fn push(&self, job: Job) -> Enqueued {
        self.push_after(job, Duration::ZERO).await
    }

    /// [`JobQueue::push`], to run no sooner than `delay` from now.
    pub async fn push_after(&self, job: Job, delay: Duration) -> Enqueued {
        match self {
            JobQueue::Local(queue) => queue.push_after(job, delay),
            JobQueue::Shared(queue) => queue.push_after(job, delay).await,
        }
    }

    /// What waits and runs; `None` when the broker does not answer.
    pub async fn depth(&self) -> Option<Depth> {
        match self {
            JobQueue::Local(queue) => Some(Depth {
                waiting: queue.depth() as u64,
                running: queue.running() as u64,
                ack_pending: 0,
            }),
            JobQueue::Shared(queue) => queue.depth().await,
        }
    }

    /// Whether nothing waits or runs, anywhere (a broker that does not answer is not
    /// idle).
    pub async fn idle(&self) -> bool {
        self.depth()
            .await
            .is_some_and(|d| d.waiting + d.running + d.ack_pending == 0)
    }

    /// Jobs this process ended, by outcome.
    pub fn outcomes(&self) -> std::collections::BTreeMap<Outcome, u64> {
        match self {
            JobQueue::Local(queue) => queue.outcomes(),
            JobQueue::Shared(queue) => queue.outcomes(),
        }
    }

    /// Runs jobs with `run` until `shutdown` turns true, then lets the running ones
    /// finish (and, with a shared queue, acks them) and returns.
    pub async fn work<F, Fut>(&self, run: F, shutdown: watch::Receiver<bool>)
    where
        F: Fn(Job) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Outcome, String>> + Send,
    {
        match self {
            JobQueue::Local(queue) => queue.work(run, shutdown).await,
            JobQueue::Shared(queue) => queue.work(run, shutdown).await,
        }
    }

    /// The queue's own metrics in the Prometheus text format.
    pub async fn write_prometheus(&self, out: &mut String) {
        use std::fmt::Write as _;
        let depth = self.depth().await.unwrap_or_default();
        let _ = writeln!(out, "# HELP refcat_worker_queue_depth Jobs waiting (in every replica, with a shared queue).\n# TYPE refcat_worker_queue_depth gauge\nrefcat_worker_queue_depth {}", depth.waiting);
        let _ = writeln!(out, "# HELP refcat_worker_jobs_running Jobs running in this process.\n# TYPE refcat_worker_jobs_running gauge\nrefcat_worker_jobs_running {}", depth.running);
        out.push_str("# HELP refcat_worker_jobs_total Jobs this process ended, by outcome.\n# TYPE refcat_worker_jobs_total counter\n");
        for (outcome, n) in self.outcomes() {
            let _ = writeln!(
                out,
                "refcat_worker_jobs_total{{outcome=\"{}\"}} {n}",
                outcome.as_str()
            );
        }
        if let JobQueue::Shared(queue) = self {
            queue.write_prometheus(out, depth);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_per_attempt_and_stays_within_its_bound() {
        let config = |backoff| QueueConfig {
            capacity: 1,
            concurrency: 1,
            attempts: u32::MAX,
            backoff,
        };
        let two = config(Duration::from_secs(2));
        let waits: Vec<u64> = (0..=5).map(|a| two.retry_delay(a).as_secs()).collect();
        assert_eq!(waits, [2, 2, 4, 8, 16, 32]);
        assert_eq!(two.retry_delay(9), MAX_RETRY_BACKOFF);
        assert_eq!(two.retry_delay(u32::MAX), MAX_RETRY_BACKOFF);
        assert_eq!(config(Duration::MAX).retry_delay(1), MAX_RETRY_BACKOFF);
        assert_eq!(config(Duration::ZERO).retry_delay(40), Duration::ZERO);
    }
}
