//! `refcat backfill`: one reconcile walk in the foreground, then publish what it found.

use std::sync::Arc;

use clap::Args;
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};

use super::{PublisherArgs, RegistryArgs, EXIT_NOTHING_TO_DO};
use crate::publish::PublishOptions;
use crate::reference::parse_registry;
use crate::worker::job::{self, JobContext};
use crate::worker::queue::Outcome;
use crate::worker::reconcile;

/// Walk every tag of every repository and publish whatever lacks a complete, current,
/// signed set. Exit codes: 0 published, 10 nothing to do, 6 some image failed (the
/// summary names it), and those of `publish` for the registry.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The registry (host[:port]).
    pub registry: String,
    /// Images published at once.
    #[arg(long, default_value_t = 2, env = "REFCAT_CONCURRENCY")]
    pub concurrency: usize,
    /// Only list what lacks something.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub publisher: PublisherArgs,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

impl BackfillArgs {
    /// Runs the walk and the publishing.
    pub async fn run(self) -> anyhow::Result<u8> {
        let registry = parse_registry(&self.registry)?;
        let client = self.registry_args.client(&registry)?;
        let context = Arc::new(JobContext {
            publisher: self
                .publisher
                .publisher(client.clone(), PublishOptions::default())?,
            client,
            stats: Default::default(),
            release_logs: Default::default(),
            // A dry run changes nothing, the release log included.
            record: !self.dry_run,
        });
        let spinner = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} checking {msg}").expect("a valid template"),
        );
        let mut missing = Vec::new();
        let walk = reconcile::walk(
            &context,
            |name| spinner.set_message(name.to_string()),
            |job| missing.push(job),
        )
        .await?;
        spinner.finish_and_clear();
        eprintln!(
            "{} images checked, {} lacking something{}",
            walk.checked,
            walk.lacking,
            if walk.errors.is_empty() {
                String::new()
            } else {
                format!(", {} tags unreadable", walk.errors.len())
            }
        );
        for (name, error) in &walk.errors {
            eprintln!("  {name}: {error}");
        }
        if self.dry_run {
            for j in &missing {
                println!("{registry}/{}", j.key());
            }
            return Ok(0);
        }
        let bar = ProgressBar::new(missing.len() as u64).with_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").expect("a valid template"),
        );
        let results: Vec<(String, Result<Outcome, String>)> = futures_util::stream::iter(missing)
            .map(|j| {
                let (context, bar) = (context.clone(), bar.clone());
                async move {
                    let key = j.key();
                    let outcome = job::run(&context, j).await;
                    bar.inc(1);
                    bar.set_message(key.clone());
                    (key, outcome)
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        bar.finish_and_clear();
        let count = |o: Outcome| {
            results
                .iter()
                .filter(|(_, r)| r.as_ref().ok() == Some(&o))
                .count()
        };
        let failed: Vec<_> = results
            .iter()
            .filter_map(|(k, r)| r.as_ref().err().map(|e| (k, e)))
            .collect();
        eprintln!(
            "published {}, already complete {}, skipped {}, failed {}",
            count(Outcome::Published),
            count(Outcome::Complete),
            count(Outcome::Skipped),
            failed.len()
        );
        for (key, error) in &failed {
            eprintln!("  {key}: {error}");
        }
        Ok(if !failed.is_empty() {
            super::EXIT_SCANNER
        } else if count(Outcome::Published) == 0 && walk.errors.is_empty() {
            EXIT_NOTHING_TO_DO
        } else {
            0
        })
    }
}
