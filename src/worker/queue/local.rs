//! The in-process job queue: bounded, deduplicated by image while a job waits or runs,
//! drained by N concurrent runners with retries and backoff. A job that keeps failing is
//! logged and counted, and left for the reconcile loop; nothing is dropped silently.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{Enqueued, Outcome, Outcomes, QueueConfig};
use crate::worker::Job;

/// The queue of one worker process: cheap to clone.
#[derive(Clone, Debug)]
pub struct LocalQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::Sender<Job>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    /// Keys of jobs waiting or running.
    keys: Mutex<HashSet<String>>,
    running: AtomicUsize,
    outcomes: Outcomes,
    config: QueueConfig,
}

impl LocalQueue {
    /// An empty queue.
    pub fn new(config: QueueConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        LocalQueue {
            inner: Arc::new(Inner {
                tx,
                rx: tokio::sync::Mutex::new(rx),
                keys: Mutex::new(HashSet::new()),
                running: AtomicUsize::new(0),
                outcomes: Outcomes::default(),
                config,
            }),
        }
    }

    /// Queues `job` unless the same image waits or runs already.
    pub fn push(&self, job: Job) -> Enqueued {
        let key = job.key();
        let mut keys = self.inner.keys.lock().expect("queue keys");
        if keys.contains(&key) {
            return Enqueued::Duplicate;
        }
        match self.inner.tx.try_send(job) {
            Ok(()) => {
                keys.insert(key);
                Enqueued::Added
            }
            Err(_) => Enqueued::Full,
        }
    }

    /// [`Queue::push`] after `delay`. The job counts as waiting (and its duplicates are
    /// refused) from now; if the queue is full when the delay ends, that is logged and
    /// the job left to the reconcile walk.
    pub fn push_after(&self, job: Job, delay: Duration) -> Enqueued {
        if delay.is_zero() {
            return self.push(job);
        }
        let key = job.key();
        if !self
            .inner
            .keys
            .lock()
            .expect("queue keys")
            .insert(key.clone())
        {
            return Enqueued::Duplicate;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if inner.tx.try_send(job).is_err() {
                inner.keys.lock().expect("queue keys").remove(&key);
                tracing::warn!(job = %key, "queue full after the settle delay; the reconcile walk will find it");
            }
        });
        Enqueued::Added
    }

    /// Jobs waiting (not running).
    pub fn depth(&self) -> usize {
        let keys = self.inner.keys.lock().expect("queue keys").len();
        keys.saturating_sub(self.running())
    }

    /// Jobs running.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::SeqCst)
    }

    /// Jobs ended so far, by outcome.
    pub fn outcomes(&self) -> BTreeMap<Outcome, u64> {
        self.inner.outcomes.snapshot()
    }

    /// Runs jobs with `run` on `concurrency` tasks until `shutdown` turns true; then
    /// lets the running jobs finish and returns. Waiting jobs stay for the next start's
    /// reconcile pass.
    pub async fn work<F, Fut>(&self, run: F, shutdown: watch::Receiver<bool>)
    where
        F: Fn(Job) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Outcome, String>> + Send,
    {
        let runners: Vec<_> = (0..self.inner.config.concurrency.max(1))
            .map(|_| {
                let (queue, run, mut shutdown) = (self.clone(), run.clone(), shutdown.clone());
                tokio::spawn(async move {
                    loop {
                        let job = tokio::select! {
                            biased;
                            _ = shutdown.wait_for(|stop| *stop) => return,
                            job = async { queue.inner.rx.lock().await.recv().await } => job,
                        };
                        let Some(job) = job else { return };
                        queue.run_one(job, &run).await;
                    }
                })
            })
            .collect();
        for runner in runners {
            let _ = runner.await;
        }
    }

    async fn run_one<F, Fut>(&self, job: Job, run: &F)
    where
        F: Fn(Job) -> Fut,
        Fut: Future<Output = Result<Outcome, String>>,
    {
        let key = job.key();
        let _running = Running::start(&self.inner, key.clone());
        let config = self.inner.config;
        let mut outcome = Outcome::Failed;
        for attempt in 1..=config.attempts.max(1) {
            match super::attempt(run(job.clone())).await {
                Ok(done) => {
                    outcome = done;
                    break;
                }
                Err(error) if attempt < config.attempts => {
                    let wait = config.retry_delay(attempt);
                    tracing::warn!(job = %key, attempt, %error, "job failed; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
                Err(error) => {
                    tracing::error!(job = %key, attempts = attempt, %error, "job failed; the reconcile loop will try again");
                }
            }
        }
        tracing::info!(job = %key, outcome = outcome.as_str(), "job done");
        self.inner.outcomes.count(outcome);
    }
}

/// A job running: counted as running, its key taken, until this drops, however its run
/// ends (a run that never returns is not idle, one cut short by a panic is).
struct Running<'a> {
    inner: &'a Inner,
    key: String,
}

impl<'a> Running<'a> {
    fn start(inner: &'a Inner, key: String) -> Self {
        inner.running.fetch_add(1, Ordering::SeqCst);
        Running { inner, key }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.inner
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
        self.inner.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u32) -> Job {
        Job {
            repository: "r".parse().unwrap(),
            target: crate::reference::Target::Tag(format!("t{n}").parse().unwrap()),
            db_built: None,
        }
    }

    #[tokio::test]
    async fn duplicates_are_dropped_while_waiting_or_running_and_failures_retried() {
        let queue = LocalQueue::new(QueueConfig {
            capacity: 2,
            concurrency: 1,
            attempts: 3,
            backoff: Duration::from_millis(1),
        });
        assert_eq!(queue.push(job(1)), Enqueued::Added);
        assert_eq!(queue.push(job(1)), Enqueued::Duplicate);
        assert_eq!(queue.push(job(2)), Enqueued::Added);
        assert_eq!(queue.push(job(3)), Enqueued::Full);
        assert_eq!(queue.depth(), 2);

        let calls = Arc::new(Mutex::new(Vec::new()));
        let (stop, shutdown) = watch::channel(false);
        let recorded = calls.clone();
        let run = move |job: Job| {
            let recorded = recorded.clone();
            async move {
                recorded.lock().unwrap().push(job.key());
                if job.key() == "r:t2" {
                    Err("registry unavailable".to_string())
                } else {
                    Ok(Outcome::Published)
                }
            }
        };
        let worker = tokio::spawn({
            let queue = queue.clone();
            async move { queue.work(run, shutdown).await }
        });
        while queue.outcomes().values().sum::<u64>() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.send(true).unwrap();
        worker.await.unwrap();
        assert_eq!(*calls.lock().unwrap(), ["r:t1", "r:t2", "r:t2", "r:t2"]);
        let outcomes = queue.outcomes();
        assert_eq!(outcomes[&Outcome::Published], 1);
        assert_eq!(outcomes[&Outcome::Failed], 1);
        assert_eq!(queue.depth(), 0);
        // Once done, the same image may be queued again.
        assert_eq!(queue.push(job(1)), Enqueued::Added);
    }

    #[tokio::test]
    async fn a_job_that_panics_is_a_failed_attempt_and_the_queue_goes_on_and_becomes_idle() {
        let queue = LocalQueue::new(QueueConfig {
            capacity: 4,
            concurrency: 1,
            attempts: 2,
            backoff: Duration::from_millis(1),
        });
        assert_eq!(queue.push(job(1)), Enqueued::Added);
        assert_eq!(queue.push(job(2)), Enqueued::Added);
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        let run = move |job: Job| {
            let recorded = recorded.clone();
            async move {
                let first = {
                    let mut calls = recorded.lock().unwrap();
                    calls.push(job.key());
                    calls.len() == 1
                };
                assert!(!first, "a bug in the job");
                Ok(Outcome::Published)
            }
        };
        let (stop, shutdown) = watch::channel(false);
        let worker = tokio::spawn({
            let queue = queue.clone();
            async move { queue.work(run, shutdown).await }
        });
        let idle = tokio::time::timeout(Duration::from_secs(10), async {
            while queue.outcomes().values().sum::<u64>() < 2 || queue.running() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            idle.is_ok(),
            "not idle: {} running, {} waiting, {:?}",
            queue.running(),
            queue.depth(),
            calls.lock().unwrap()
        );
        stop.send(true).unwrap();
        worker.await.unwrap();
        assert_eq!(*calls.lock().unwrap(), ["r:t1", "r:t1", "r:t2"]);
        assert_eq!(queue.outcomes()[&Outcome::Published], 2);
        assert_eq!(queue.depth(), 0);
    }
}
