//! `refcat worker`: publish as images arrive (webhooks) and as the reconcile walk finds
//! gaps, until SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::{PublisherArgs, RegistryArgs};
use crate::broker::Broker;
use crate::reference::{parse_registry, RepositoryName};
use crate::registry::Client;
use crate::secret::Secret;
use crate::worker::aggregate::{self, AggregateTarget};
use crate::worker::auth::WebhookSecret;
use crate::worker::intake::{router, Intake};
use crate::worker::job;
use crate::worker::queue::{JobQueue, LocalQueue, Outcome, QueueConfig, SharedQueue};
use crate::worker::tasks;

/// Keep every image in a registry covered: signed Syft JSON, SPDX and Grype referrers
/// within seconds of a push, and a periodic walk for whatever events missed.
///
/// Webhooks go to `POST /events` on --listen: distribution notifications, zot's events
/// extension (CloudEvents over HTTP), Harbor's webhooks (default or CloudEvents format)
/// or Quay's repository-push webhook. Each must carry
/// `Authorization: Bearer <secret>` or `X-Refcat-Signature: sha256=<hex HMAC-SHA256 of
/// the body>`. `/metrics` serves Prometheus metrics, `/healthz` liveness. On SIGTERM
/// the worker stops taking webhooks and lets running jobs finish (up to
/// --drain-timeout); waiting jobs are found again by the next start's walk.
#[derive(Debug, Args)]
#[command(after_help = super::exit::SERVER_EXIT_CODES)]
pub struct WorkerArgs {
    /// The registry (host[:port]).
    #[arg(env = "REFCAT_REGISTRY")]
    pub registry: String,
    /// Address for webhooks and metrics.
    #[arg(long, default_value = "127.0.0.1:8081", env = "REFCAT_LISTEN")]
    pub listen: SocketAddr,
    /// The shared secret webhooks must present: `Authorization: Bearer <secret>` (or the
    /// bare secret, as Harbor's "auth header" sends it), or an HMAC of the body.
    #[arg(
        long,
        env = "REFCAT_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub webhook_secret: Option<Secret>,
    /// Take no webhooks (`POST /events` answers 404): only the reconcile walk and the
    /// Grype DB watcher find work, and no secret is needed.
    #[arg(long, env = "REFCAT_NO_WEBHOOKS", conflicts_with = "webhook_secret")]
    pub no_webhooks: bool,
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
    /// Times a failed job is tried again (with doubling backoff) before it is left to
    /// the reconcile walk.
    #[arg(
        long,
        default_value_t = 2,
        env = "REFCAT_JOB_RETRIES",
        value_name = "N"
    )]
    pub job_retries: u32,
    /// Time between reconcile walks (10m, 1h; 0: only the one at start).
    #[arg(long, default_value = "10m", env = "REFCAT_RECONCILE_INTERVAL", value_parser = super::duration::parse, value_name = "DURATION")]
    pub reconcile_interval: Duration,
    /// Time between checks of the Grype DB's built time (0: never). When it changes, a
    /// walk queues every image whose Grype artifact was made with another DB; those jobs
    /// run grype on the Syft JSON already in the registry, never syft again.
    #[arg(long, default_value = "5m", env = "REFCAT_DB_CHECK_INTERVAL", value_parser = super::duration::parse, value_name = "DURATION")]
    pub db_check_interval: Duration,
    /// How long an image manifest pushed by digest alone waits before its job runs. A
    /// multi-platform push sends its platform manifests before the tagged index; waiting
    /// lets the index's job publish them knowing the tag, so their first Grype artifact
    /// carries `first_seen` over from the stream's previous release.
    #[arg(long, default_value = "3s", env = "REFCAT_SETTLE", value_parser = super::duration::parse, value_name = "DURATION")]
    pub settle: Duration,
    /// How long running jobs get to finish after SIGTERM.
    #[arg(long, default_value = "2m", env = "REFCAT_DRAIN_TIMEOUT", value_parser = super::duration::parse, value_name = "DURATION")]
    pub drain_timeout: Duration,
    /// Store the catalog-wide vulnerability aggregate, signed, in this repository
    /// (tagged `refcat-aggregate`) whenever it changes; `refcat serve` with the same
    /// option answers /v1/vulnerabilities from it. Where a --repository glob selects the
    /// repositories, the ones found are stored there too (`refcat-repositories`), for
    /// `serve` and `backfill` where `_catalog` is refused.
    #[arg(long, env = "REFCAT_AGGREGATE_REPOSITORY", value_name = "REPOSITORY")]
    pub aggregate_repository: Option<RepositoryName>,
    /// Scan every image, even one copied from a repository where refcat already holds a
    /// complete set for the same digest (by default, with --aggregate-repository, such
    /// a set is copied, signatures and all, with no scan).
    #[arg(long, env = "REFCAT_NO_REUSE")]
    pub no_reuse: bool,
    /// The tag that summarises a repository in the aggregate when it has it (default:
    /// the newest by created), as for `refcat serve --default-tag`.
    #[arg(long, env = "REFCAT_DEFAULT_TAG", value_name = "TAG")]
    pub default_tag: Option<String>,
    #[command(flatten)]
    pub repositories: super::RepositoryArgs,
    #[command(flatten)]
    pub broker: super::BrokerArgs,
    #[command(flatten)]
    pub publisher: PublisherArgs,
    #[command(flatten)]
    pub server: super::ServerArgs,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

impl WorkerArgs {
    /// Runs until SIGTERM.
    pub async fn run(self) -> anyhow::Result<u8> {
        // Before anything opens descriptors: the cap depends on how many there may be.
        let limits = self.server.limits().for_this_process();
        let registry = parse_registry(&self.registry)?;
        let secret = match (&self.webhook_secret, self.no_webhooks) {
            (_, true) => None,
            (Some(secret), false) if !secret.expose().is_empty() => {
                Some(WebhookSecret::new(secret.clone()))
            }
            (Some(_), false) => {
                anyhow::bail!("--webhook-secret (or REFCAT_WEBHOOK_SECRET) must not be empty")
            }
            (None, false) => anyhow::bail!(
                "webhooks need a shared secret: pass --webhook-secret (or set REFCAT_WEBHOOK_SECRET), or --no-webhooks to only walk the registry"
            ),
        };
        let broker = match self.broker.config(self.queue_capacity)? {
            Some(config) => {
                let url = crate::broker::shown_url(&config.url);
                let broker = Broker::connect(config).await?;
                tracing::info!(target: super::STATUS, "refcat worker: sharing jobs with the replicas on {url}");
                Some(broker)
            }
            None => None,
        };
        let mut config = self.registry_args.config(&registry)?;
        // Tag-schema indexes are edited by one replica at a time.
        config.shared_locks = broker.as_ref().map(Broker::shared_locks);
        let client = Client::new(config);
        super::check_registry(&client).await?;
        let context = self.publisher.job_context(
            client.clone(),
            &self.repositories,
            self.aggregate_repository.clone(),
            true,
            broker.clone(),
            !self.no_reuse,
        )?;
        let config = QueueConfig {
            capacity: self.queue_capacity,
            concurrency: self.concurrency,
            attempts: self.job_retries.saturating_add(1),
            backoff: Duration::from_secs(2),
        };
        let queue = match &broker {
            Some(broker) => JobQueue::Shared(SharedQueue::new(broker.clone(), config)),
            None => JobQueue::Local(LocalQueue::new(config)),
        };
        let intake = Intake {
            queue: queue.clone(),
            secret,
            responses: Default::default(),
            context: context.clone(),
            settle: self.settle,
        };
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        tracing::info!(target: super::STATUS, "refcat worker: publishing for {registry}; webhooks to http://{}/events",
            listener.local_addr()?);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // Jobs that publish and walks that end may change the catalog aggregate.
        let changed = Arc::new(tokio::sync::Notify::new());
        let runner = {
            let (context, changed) = (context.clone(), changed.clone());
            move |j| {
                let (context, changed) = (context.clone(), changed.clone());
                async move {
                    let outcome = job::run(&context, j).await;
                    if outcome == Ok(Outcome::Published) {
                        changed.notify_one();
                    }
                    outcome
                }
            }
        };
        let work = tokio::spawn({
            let (queue, stopped) = (queue.clone(), stopped.clone());
            async move { queue.work(runner, stopped).await }
        });
        let events = tokio::spawn(tasks::read_events(intake.clone(), stopped.clone()));
        let walk_now = Arc::new(tokio::sync::Notify::new());
        let walks = tokio::spawn(tasks::reconcile_loop(
            context.clone(),
            queue.clone(),
            self.reconcile_interval,
            walk_now.clone(),
            changed.clone(),
            stopped.clone(),
        ));
        let aggregate = self.aggregate_repository.clone().map(|repository| {
            tokio::spawn(aggregate::keep_current(
                context.clone(),
                queue.clone(),
                AggregateTarget {
                    repository,
                    default_tag: self.default_tag.clone(),
                },
                changed,
            ))
        });
        let watcher = tokio::spawn(tasks::watch_db(context, self.db_check_interval, walk_now));
        let app = router(intake, self.max_body_kib * 1024);
        crate::server::serve(listener, app, limits, super::termination())
            .await
            .context("the HTTP server failed")?;
        let depth = queue.depth().await.unwrap_or_default();
        let left = match &broker {
            Some(_) => "waiting jobs stay on the broker for the other replicas",
            None => "waiting jobs are left for the next walk",
        };
        tracing::info!(target: super::STATUS,
            "refcat worker: stopping; {} running jobs get up to {:?}, {} waiting ({left})",
            depth.running,
            self.drain_timeout,
            depth.waiting
        );
        let _ = stop.send(true);
        walks.abort();
        watcher.abort();
        events.abort();
        if let Some(task) = &aggregate {
            task.abort();
        }
        if tokio::time::timeout(self.drain_timeout, work)
            .await
            .is_err()
        {
            tracing::warn!(target: super::STATUS,
                "refcat worker: drain timeout; unfinished jobs will be run again (by another replica, or the next walk)"
            );
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    #[test]
    fn debug_of_the_arguments_redacts_the_webhook_secret() {
        let cli = crate::cli::Cli::try_parse_from([
            "refcat",
            "worker",
            "127.0.0.1:5000",
            "--webhook-secret",
            "hunter2-secret",
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("hunter2-secret"));
    }
}
