//! How refcat publishes: where syft and grype are and how long they may run, the
//! signing key, and how signatures and SBOMs are stored. Shared by `publish`,
//! `worker` and `backfill`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::key_args::load_private_key;
use crate::broker::Broker;
use crate::locks::KeyedLocks;
use crate::publish::{PublishOptions, Publisher, SignatureFormat};
use crate::reference::RepositoryName;
use crate::registry::Client;
use crate::scan::{Grype, Syft};
use crate::worker::job::JobContext;

/// Options for the scanners refcat runs and the artifacts it signs.
#[derive(Debug, Args)]
pub struct PublisherArgs {
    /// The cosign private key (password in COSIGN_PASSWORD).
    #[arg(
        long,
        env = "REFCAT_KEY",
        default_value = "cosign.key",
        value_name = "FILE"
    )]
    pub key: PathBuf,
    /// How signatures are stored.
    #[arg(long, env = "REFCAT_SIGNATURE_FORMAT", value_enum, default_value_t = SignatureFormat::Bundle)]
    pub signature_format: SignatureFormat,
    /// Store Syft JSON gzip-compressed.
    #[arg(long, env = "REFCAT_COMPRESS")]
    pub compress: bool,
    /// The syft binary.
    #[arg(long, env = "REFCAT_SYFT", default_value = "syft", value_name = "PATH")]
    pub syft: PathBuf,
    /// The grype binary.
    #[arg(
        long,
        env = "REFCAT_GRYPE",
        default_value = "grype",
        value_name = "PATH"
    )]
    pub grype: PathBuf,
    /// Grype's DB directory (unset: grype's own, which honours GRYPE_DB_CACHE_DIR). grype
    /// never updates it.
    #[arg(long, env = "REFCAT_GRYPE_DB_DIR", value_name = "DIR")]
    pub grype_db_dir: Option<PathBuf>,
    /// Keep only the newest N Grype artifacts per platform manifest: older ones are
    /// deleted, with their signatures, once a newer one is committed (where the
    /// registry allows deletes). Unset keeps every one.
    #[arg(long, env = "REFCAT_KEEP", value_name = "N")]
    pub keep: Option<std::num::NonZeroUsize>,
    /// How long one syft or grype run may take before it is stopped.
    #[arg(long, env = "REFCAT_SCAN_TIMEOUT", default_value = "10m", value_parser = super::duration::parse, value_name = "DURATION")]
    pub scan_timeout: Duration,
}

impl PublisherArgs {
    /// A publisher over `client` with these options on top of `options`. A dry run
    /// needs the key too: only what verifies with it counts as done.
    pub fn publisher(&self, client: Client, options: PublishOptions) -> anyhow::Result<Publisher> {
        let key = load_private_key(&self.key)?;
        // A refcat killed mid-scan leaves what its scanners unpacked behind.
        let removed = crate::scan::remove_stale_scratch();
        if removed > 0 {
            tracing::info!(
                removed,
                "removed scratch directories of earlier refcat runs that were stopped mid-scan"
            );
        }
        let (syft, grype) = self.scanners();
        Ok(Publisher::new(
            client,
            syft,
            grype,
            key,
            PublishOptions {
                signature_format: self.signature_format,
                compress: self.compress,
                keep: self.keep,
                abort_after: std::env::var("REFCAT_ABORT_AFTER").ok(),
                ..options
            },
        ))
    }

    /// What the jobs of `worker` and `backfill` share: this publisher over `client`, the
    /// repositories they cover (a stored list of them must carry the publisher's
    /// signature), and whether release logs are written.
    /// With `broker`, subjects being published and release logs are locked across
    /// every replica on it.
    pub fn job_context(
        &self,
        client: Client,
        repositories: &super::RepositoryArgs,
        aggregate: Option<RepositoryName>,
        record: bool,
        broker: Option<Broker>,
        reuse: bool,
    ) -> anyhow::Result<Arc<JobContext>> {
        let options = PublishOptions {
            reuse_from: aggregate.clone().filter(|_| reuse),
            ..PublishOptions::default()
        };
        let mut publisher = self.publisher(client.clone(), options)?;
        let (mut release_logs, mut summary_locks) = Default::default();
        if let Some(broker) = &broker {
            publisher = publisher.share_locks(broker.shared_locks());
            release_logs = KeyedLocks::across(broker.shared_locks(), "release-log");
            summary_locks = KeyedLocks::across(broker.shared_locks(), "summary");
        }
        let repositories = repositories.repositories(aggregate, publisher.own_trust().clone())?;
        Ok(Arc::new(JobContext {
            publisher,
            client,
            stats: Default::default(),
            release_logs,
            record,
            repositories,
            broker,
            complete: Default::default(),
            published: Default::default(),
            summary_locks,
        }))
    }

    /// The configured syft and grype.
    pub fn scanners(&self) -> (Syft, Grype) {
        let timeout = self.scan_timeout.max(Duration::from_secs(1));
        (
            Syft {
                program: self.syft.clone(),
                timeout,
            },
            Grype {
                program: self.grype.clone(),
                timeout,
                db_cache_dir: self.grype_db_dir.clone(),
            },
        )
    }
}
