//! `refcat worker`: publish as images arrive (webhooks) and as the reconcile walk finds
//! gaps, until SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::{PublisherArgs, RegistryArgs};
use crate::publish::PublishOptions;
use crate::reference::parse_registry;
use crate::secret::Secret;
use crate::worker::auth::WebhookSecret;
use crate::worker::intake::{router, Intake};
use crate::worker::queue::{Enqueued, Queue, QueueConfig};
use crate::worker::{job, reconcile};

/// Keep every image in a registry covered: signed Syft JSON, SPDX and Grype referrers
/// within seconds of a push, and a periodic walk for whatever events missed.
///
/// Webhooks go to `POST /events` on --listen: distribution notifications, zot's events
/// extension (CloudEvents over HTTP) or Quay's repository-push webhook. Each must carry
/// `Authorization: Bearer <secret>` or `X-Refcat-Signature: sha256=<hex HMAC-SHA256 of
/// the body>`. `/metrics` serves Prometheus metrics, `/healthz` liveness. On SIGTERM
/// the worker stops taking webhooks and lets running jobs finish (up to
/// --drain-timeout); waiting jobs are found again by the next start's walk.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The registry (host[:port]).
    pub registry: String,
    /// Address for webhooks and metrics.
    #[arg(long, default_value = "127.0.0.1:8081", env = "REFCAT_WORKER_LISTEN")]
    pub listen: SocketAddr,
    /// The shared secret webhooks must present.
    #[arg(long, env = "REFCAT_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: String,
    /// Largest webhook body accepted, in KiB (larger ones get 413).
    #[arg(
        long,
        default_value_t = 1024,
        env = "REFCAT_MAX_BODY_KIB",
        value_name = "KIB"
    )]
    pub max_body_kib: usize,
    /// Jobs published at once.
    #[arg(long, default_value_t = 2, env = "REFCAT_CONCURRENCY")]
    pub concurrency: usize,
    /// Jobs that may wait; beyond this webhooks get 503 with Retry-After.
    #[arg(long, default_value_t = 10_000, env = "REFCAT_QUEUE_CAPACITY")]
    pub queue_capacity: usize,
    /// Attempts per job before it is left to the reconcile walk.
    #[arg(long, default_value_t = 3, env = "REFCAT_JOB_ATTEMPTS")]
    pub attempts: u32,
    /// Seconds between reconcile walks (0: only the one at start).
    #[arg(
        long,
        default_value_t = 600,
        env = "REFCAT_RECONCILE_INTERVAL",
        value_name = "SECONDS"
    )]
    pub reconcile_interval: u64,
    /// Seconds running jobs get to finish after SIGTERM.
    #[arg(
        long,
        default_value_t = 120,
        env = "REFCAT_DRAIN_TIMEOUT",
        value_name = "SECONDS"
    )]
    pub drain_timeout: u64,
    #[command(flatten)]
    pub publisher: PublisherArgs,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

impl WorkerArgs {
    /// Runs until SIGTERM.
    pub async fn run(self) -> anyhow::Result<u8> {
        let registry = parse_registry(&self.registry)?;
        if self.webhook_secret.is_empty() {
            anyhow::bail!("--webhook-secret (or REFCAT_WEBHOOK_SECRET) must not be empty");
        }
        let client = self.registry_args.client(&registry)?;
        let publisher = Arc::new(self.publisher.publisher(
            client.clone(),
            PublishOptions::default(),
            false,
        )?);
        let queue = Queue::new(QueueConfig {
            capacity: self.queue_capacity,
            concurrency: self.concurrency,
            attempts: self.attempts,
            backoff: Duration::from_secs(2),
        });
        let intake = Intake {
            queue: queue.clone(),
            secret: WebhookSecret::new(Secret::new(self.webhook_secret.clone())),
            client: client.clone(),
            responses: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        eprintln!(
            "refcat worker: publishing for {registry}; webhooks to http://{}/events",
            listener.local_addr()?
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let runner = {
            let (client, publisher) = (client.clone(), publisher.clone());
            move |j| {
                let (client, publisher) = (client.clone(), publisher.clone());
                async move { job::run(&client, &publisher, j).await }
            }
        };
        let work = tokio::spawn({
            let (queue, stopped) = (queue.clone(), stopped.clone());
            async move { queue.work(runner, stopped).await }
        });
        let walks = tokio::spawn(reconcile_loop(
            client.clone(),
            publisher,
            queue.clone(),
            Duration::from_secs(self.reconcile_interval),
            stopped.clone(),
        ));
        let app = router(intake, self.max_body_kib * 1024);
        axum::serve(listener, app)
            .with_graceful_shutdown(super::termination())
            .await
            .context("the HTTP server failed")?;
        eprintln!(
            "refcat worker: stopping; {} running jobs get up to {} s, {} waiting jobs are left for the next walk",
            queue.running(),
            self.drain_timeout,
            queue.depth()
        );
        let _ = stop.send(true);
        walks.abort();
        if tokio::time::timeout(Duration::from_secs(self.drain_timeout), work)
            .await
            .is_err()
        {
            eprintln!(
                "refcat worker: drain timeout; unfinished jobs will be found by the next walk"
            );
        }
        Ok(0)
    }
}

/// A walk at start, then one every `interval` (none more when it is zero).
async fn reconcile_loop(
    client: crate::registry::Client,
    publisher: Arc<crate::publish::Publisher>,
    queue: Queue,
    interval: Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match reconcile::walk(&client, &publisher, |_| {}).await {
            Ok(walk) => {
                let queued = walk
                    .missing
                    .into_iter()
                    .filter(|j| queue.push(j.clone()) == Enqueued::Added)
                    .count();
                tracing::info!(
                    checked = walk.checked,
                    queued,
                    errors = walk.errors.len(),
                    "reconcile walk done"
                );
                for (name, error) in walk.errors {
                    tracing::warn!(%name, %error, "reconcile could not check this; next walk retries");
                }
            }
            Err(e) => tracing::error!(error = %e, "reconcile walk failed; next walk retries"),
        }
        if interval.is_zero() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}
