//! The queue worker replicas share, on the broker's jobs stream. A job is published
//! once (the stream refuses a second one for a key that waits or runs, and drops
//! repeats of its message id), each replica fetches only as many as it has free slots,
//! a running job reports progress so a long scan is not handed to another replica, and
//! a job is acked only once it ended. A failure is handed back with a delay; on its last
//! attempt the job is ended (and counted dead), so a poison job never blocks its image.
//! A replica whose Grype DB is older than a re-scan's hands the job on as a copy that
//! waits a while, so however long the replicas' DBs disagree, no attempt is used up.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};

use super::{Depth, Enqueued, Outcome, Outcomes, QueueConfig};
use crate::broker::{Broker, Delivery, Progress, Published};
use crate::reference::{RepositoryName, Tag, Target};
use crate::worker::Job;

/// When a job may run, in milliseconds since the epoch (a settling push).
const NOT_BEFORE: &str = "Refcat-Not-Before";
/// Set on a job published to wait longer than [`HAND_BACK_PAST`]: its first delivery is
/// handed back until the job is due (at once, when it is due already) and is no
/// attempt. So the job's tries are its deliveries less one, however long it then waited
/// for a free slot.
const HELD_BACK: &str = "Refcat-Held-Back";
/// How often a job was handed on by replicas whose Grype DB was older than the job's.
const DEFERRALS: &str = "Refcat-Deferrals";
/// How long a job handed on by a replica whose Grype DB is older than the job's waits
/// before it is offered again.
const OLDER_DB_RETRY: Duration = Duration::from_secs(15);
/// A job published to wait longer than this is handed back on its first delivery until
/// it is due, freeing the slot; a shorter wait is slept through.
const HAND_BACK_PAST: Duration = Duration::from_millis(500);
/// The longest a job is held back for its not-before time (a sender's clock may be off).
const LONGEST_HOLD: Duration = Duration::from_secs(60);

/// A job as the stream carries it.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(rename = "dbBuilt", skip_serializing_if = "Option::is_none")]
    db_built: Option<String>,
}

impl Message {
    fn of(job: &Job) -> Message {
        let (tag, digest) = match &job.target {
            Target::Tag(tag) => (Some(tag.to_string()), None),
            Target::Digest(digest) => (None, Some(digest.to_string())),
            Target::Pinned(tag, digest) => (Some(tag.to_string()), Some(digest.to_string())),
        };
        Message {
            repository: job.repository.to_string(),
            tag,
            digest,
            db_built: job.db_built.clone(),
        }
    }

    /// The job, parsed as anything from outside is.
    fn job(&self) -> Result<Job, String> {
        let repository: RepositoryName = self.repository.parse().map_err(|e| format!("{e}"))?;
        let tag = self
            .tag
            .as_deref()
            .map(|t| t.parse::<Tag>().map_err(|e| format!("{e}")))
            .transpose()?;
        let digest = self
            .digest
            .as_deref()
            .map(|d| crate::digest::parse(d).map_err(|e| format!("{e}")))
            .transpose()?;
        let target = match (tag, digest) {
            (Some(tag), Some(digest)) => Target::Pinned(tag, digest),
            (Some(tag), None) => Target::Tag(tag),
            (None, Some(digest)) => Target::Digest(digest),
            (None, None) => return Err("a job names neither tag nor digest".into()),
        };
        Ok(Job {
            repository,
            target,
            db_built: self.db_built.clone(),
        })
    }
}

/// The broker's queue: cheap to clone.
#[derive(Clone, Debug)]
pub struct SharedQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    broker: Broker,
    config: QueueConfig,
    running: AtomicUsize,
    outcomes: Outcomes,
    /// Jobs this replica was handed again (another replica died or failed with them).
    redelivered: AtomicU64,
    /// Jobs this replica ended unfinished: attempts used up, or unreadable.
    dead: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl SharedQueue {
    /// The queue on `broker`'s jobs stream.
    pub fn new(broker: Broker, config: QueueConfig) -> Self {
        SharedQueue {
            inner: Arc::new(Inner {
                broker,
                config,
                running: AtomicUsize::new(0),
                outcomes: Outcomes::default(),
                redelivered: AtomicU64::new(0),
                dead: AtomicU64::new(0),
            }),
        }
    }

    /// Publishes `job` to run no sooner than `delay` from now; [`Enqueued::Added`] only
    /// once the broker stored it.
    pub async fn push_after(&self, job: Job, delay: Duration) -> Enqueued {
        self.publish(&job, delay, 0).await
    }

    /// Publishes `job`, handed on `deferrals` times by replicas with an older Grype DB.
    async fn publish(&self, job: &Job, delay: Duration, deferrals: u32) -> Enqueued {
        let key = job.key();
        // A re-scan with a newer DB is another job than the last one for the key.
        let mut id = match &job.db_built {
            Some(built) => format!("{key}#db={built}"),
            None => key.clone(),
        };
        // A handed-on copy takes a subject of its own, two in turn: the delivery it
        // replaces holds the job's subject until it is acked, after the copy is stored.
        let subject = match deferrals {
            0 => key.clone(),
            n => {
                id.push_str(&format!("#deferred={n}"));
                format!("{key}#deferred={}", n % 2)
            }
        };
        let payload = serde_json::to_vec(&Message::of(job)).expect("a job serializes");
        let mut headers = Vec::new();
        if !delay.is_zero() {
            headers.push((
                NOT_BEFORE,
                (now_ms() + delay.as_millis() as u64).to_string(),
            ));
        }
        if delay > HAND_BACK_PAST {
            headers.push((HELD_BACK, "1".into()));
        }
        if deferrals > 0 {
            headers.push((DEFERRALS, deferrals.to_string()));
        }
        match self
            .inner
            .broker
            .jobs()
            .publish(&subject, &id, payload.into(), &headers)
            .await
        {
            Ok(Published::Stored) => Enqueued::Added,
            Ok(Published::Duplicate) => Enqueued::Duplicate,
            Ok(Published::Full) => Enqueued::Full,
            Err(e) => {
                tracing::warn!(job = %key, error = %e, "the broker did not take a job");
                Enqueued::Unavailable
            }
        }
    }

    /// What waits and runs; `None` when the broker does not answer.
    pub async fn depth(&self) -> Option<Depth> {
        let depth = match self.inner.broker.jobs().depth().await {
            Ok(depth) => depth,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the jobs stream");
                return None;
            }
        };
        Some(Depth {
            waiting: depth.messages.saturating_sub(depth.ack_pending),
            running: self.inner.running.load(Ordering::SeqCst) as u64,
            ack_pending: depth.ack_pending,
        })
    }

    /// Jobs this process ended, by outcome.
    pub fn outcomes(&self) -> BTreeMap<Outcome, u64> {
        self.inner.outcomes.snapshot()
    }

    /// The broker's side of the metrics.
    pub fn write_prometheus(&self, out: &mut String, depth: Depth) {
        use std::fmt::Write as _;
        let inner = &self.inner;
        let _ = writeln!(out, "# HELP refcat_worker_jobs_ack_pending Jobs delivered and not yet acked, across replicas.\n# TYPE refcat_worker_jobs_ack_pending gauge\nrefcat_worker_jobs_ack_pending {}", depth.ack_pending);
        let _ = writeln!(out, "# HELP refcat_worker_jobs_redelivered_total Jobs this replica was handed again.\n# TYPE refcat_worker_jobs_redelivered_total counter\nrefcat_worker_jobs_redelivered_total {}", inner.redelivered.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP refcat_worker_jobs_dead_total Jobs this replica ended unfinished (attempts used up, or unreadable).\n# TYPE refcat_worker_jobs_dead_total counter\nrefcat_worker_jobs_dead_total {}", inner.dead.load(Ordering::Relaxed));
    }

    /// Fetches jobs for the free slots and runs them until `shutdown`; then lets the
    /// running jobs finish and settles them.
    pub async fn work<F, Fut>(&self, run: F, mut shutdown: watch::Receiver<bool>)
    where
        F: Fn(Job) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Outcome, String>> + Send,
    {
        let slots = Arc::new(Semaphore::new(self.inner.config.concurrency.max(1)));
        let mut running = tokio::task::JoinSet::new();
        loop {
            let first = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                permit = slots.clone().acquire_owned() => permit.expect("the slots stay open"),
            };
            let mut permits = vec![first];
            while let Ok(more) = slots.clone().try_acquire_owned() {
                permits.push(more);
            }
            let fetched = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                fetched = self.inner.broker.jobs().fetch(permits.len()) => fetched,
            };
            let deliveries = match fetched {
                Ok(deliveries) => deliveries,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fetch jobs from the broker; trying again");
                    drop(permits);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for delivery in deliveries {
                let permit = permits.pop().expect("no more jobs than free slots");
                let (queue, run) = (self.clone(), run.clone());
                running.spawn(async move {
                    queue.run_one(delivery, &run).await;
                    drop(permit);
                });
            }
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
    }

    async fn run_one<F, Fut>(&self, delivery: Delivery, run: &F)
    where
        F: Fn(Job) -> Fut,
        Fut: Future<Output = Result<Outcome, String>>,
    {
        let inner = &self.inner;
        let attempts = i64::from(inner.config.attempts.max(1));
        let job = serde_json::from_slice::<Message>(&delivery.payload)
            .map_err(|e| e.to_string())
            .and_then(|m| m.job());
        let job = match job {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(error = %e, "an unreadable job on the jobs stream; ended");
                inner.dead.fetch_add(1, Ordering::Relaxed);
                let _ = delivery.give_up().await;
                return;
            }
        };
        let key = job.key();
        let not_before = delivery
            .header(NOT_BEFORE)
            .and_then(|t| t.parse::<u64>().ok())
            .map(|t| Duration::from_millis(t.saturating_sub(now_ms())).min(LONGEST_HOLD));
        let held_back = delivery.header(HELD_BACK).is_some();
        if held_back && delivery.delivered == 1 {
            let _ = delivery.retry_after(not_before.unwrap_or_default()).await;
            return;
        }
        // The hand-back was a delivery, and no try. (A broker that lost count, or a
        // job from an older refcat, is still tried once.)
        let tries = (delivery.delivered - i64::from(held_back)).max(1);
        if tries > 1 {
            inner.redelivered.fetch_add(1, Ordering::Relaxed);
        }
        // A replica died with it on every attempt: it must not block its image forever.
        if tries > attempts {
            tracing::error!(job = %key, tries, "job tried more often than its attempts; ended, the reconcile walk will find it again");
            self.ended(&delivery, Outcome::Failed, true).await;
            return;
        }
        let running = Running::start(
            &inner.running,
            tokio::spawn(report_progress(
                delivery.progress(),
                inner.broker.ack_wait() / 3,
            )),
        );
        if let Some(wait) = not_before {
            tokio::time::sleep(wait).await;
        }
        let result = super::attempt(run(job.clone())).await;
        // Progress reported after the job is settled would delay a handed-back job.
        running.progress.abort();
        match result {
            Ok(Outcome::Deferred) => {
                tracing::info!(job = %key, "this replica's Grype DB is older than the job's; handed on");
                // Waiting for a replica with a newer DB is no failed attempt: a copy with
                // its attempts whole takes the job's place.
                let deferrals = delivery
                    .header(DEFERRALS)
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(0);
                let copy = self
                    .publish(&job, OLDER_DB_RETRY, deferrals.saturating_add(1))
                    .await;
                let _ = match copy {
                    Enqueued::Added | Enqueued::Duplicate => delivery.ack().await,
                    Enqueued::Full | Enqueued::Unavailable => {
                        delivery.retry_after(OLDER_DB_RETRY).await
                    }
                };
                self.count(Outcome::Deferred);
            }
            Ok(outcome) => {
                tracing::info!(job = %key, outcome = outcome.as_str(), "job done");
                self.ended(&delivery, outcome, false).await;
            }
            Err(error) if tries < attempts => {
                let attempt = u32::try_from(tries).unwrap_or(u32::MAX);
                let wait = inner.config.retry_delay(attempt);
                tracing::warn!(job = %key, attempt, %error, "job failed; handed back to run again in {wait:?}");
                let _ = delivery.retry_after(wait).await;
            }
            Err(error) => {
                tracing::error!(job = %key, attempts, %error, "job failed on its last attempt; ended, the reconcile walk will find it again");
                self.ended(&delivery, Outcome::Failed, true).await;
            }
        }
    }

    /// Settles a job that ended: acked when done, ended unfinished when `dead`.
    async fn ended(&self, delivery: &Delivery, outcome: Outcome, dead: bool) {
        let settled = match dead {
            true => {
                self.inner.dead.fetch_add(1, Ordering::Relaxed);
                delivery.give_up().await
            }
            false => delivery.ack().await,
        };
        if let Err(e) = settled {
            // Unacked, the job comes back; its run then finds the work done.
            tracing::warn!(error = %e, "a finished job could not be settled with the broker");
        }
        self.count(outcome);
    }

    fn count(&self, outcome: Outcome) {
        self.inner.outcomes.count(outcome);
    }
}

/// A delivery being run: counted as running, its progress reported, until this drops,
/// however the run ends (once it stops, the broker hands the job on after its ack wait).
struct Running<'a> {
    count: &'a AtomicUsize,
    progress: tokio::task::JoinHandle<()>,
}

impl<'a> Running<'a> {
    fn start(count: &'a AtomicUsize, progress: tokio::task::JoinHandle<()>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Running { count, progress }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.progress.abort();
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reports progress every `every`, so that the broker does not hand a long job to
/// another replica.
async fn report_progress(progress: Progress, every: Duration) {
    loop {
        tokio::time::sleep(every.max(Duration::from_millis(100))).await;
        if let Err(e) = progress.report().await {
            tracing::warn!(error = %e, "cannot report a job's progress");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_crosses_the_stream_intact_and_a_hostile_one_is_refused() {
        let digest = crate::digest::sha256(b"x");
        let job = Job {
            repository: "team/app".parse().unwrap(),
            target: Target::Pinned("1.0".parse().unwrap(), digest.clone()),
            db_built: Some("2026-11-01T00:00:00Z".into()),
        };
        let text = serde_json::to_vec(&Message::of(&job)).unwrap();
        let back = serde_json::from_slice::<Message>(&text)
            .unwrap()
            .job()
            .unwrap();
        assert_eq!(back, job);
        let hostile = Message {
            repository: "../etc".into(),
            tag: None,
            digest: Some(digest.to_string()),
            db_built: None,
        };
        assert!(hostile.job().is_err());
        let empty = Message {
            repository: "a".into(),
            tag: None,
            digest: None,
            db_built: None,
        };
        assert!(empty.job().is_err());
    }
}
