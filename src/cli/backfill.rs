//! `refcat backfill`: one reconcile walk in the foreground, then publish what it found.

use clap::Args;
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};

use serde_json::json;

use super::progress::Progress;
use super::{OutputFormat, PublisherArgs, RegistryArgs, EXIT_NOTHING_TO_DO};
use crate::reference::parse_registry;
use crate::worker::job;
use crate::worker::queue::Outcome;
use crate::worker::reconcile;

/// Walk every tag of every repository and publish whatever lacks a complete, current,
/// signed set.
#[derive(Debug, Args)]
#[command(after_help = super::exit::BACKFILL_EXIT_CODES)]
pub struct BackfillArgs {
    /// The registry (host[:port]).
    #[arg(env = "REFCAT_REGISTRY")]
    pub registry: String,
    /// Images published at once.
    #[arg(
        long,
        default_value_t = 2,
        env = "REFCAT_CONCURRENCY",
        value_name = "N"
    )]
    pub concurrency: usize,
    /// Only list what lacks something.
    #[arg(long, env = "REFCAT_DRY_RUN")]
    pub dry_run: bool,
    /// Summary format on standard output (progress goes to standard error).
    #[arg(long, alias = "output", env = "REFCAT_FORMAT", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Exit 10 instead of 0 when everything was already there (Terraform's convention).
    #[arg(long, env = "REFCAT_DETAILED_EXITCODE")]
    pub detailed_exitcode: bool,
    /// Where `refcat worker --aggregate-repository` stores catalog-wide records: left
    /// out of the walk, and where `_catalog` is refused, the repositories the worker
    /// found (its signed `refcat-repositories`) expand --repository globs.
    #[arg(long, env = "REFCAT_AGGREGATE_REPOSITORY", value_name = "REPOSITORY")]
    pub aggregate_repository: Option<crate::reference::RepositoryName>,
    /// Scan every image, even one copied from a repository where the worker's subject
    /// index names a complete set for the same digest (by default such a set is copied).
    #[arg(long, env = "REFCAT_NO_REUSE")]
    pub no_reuse: bool,
    #[command(flatten)]
    pub repositories: super::RepositoryArgs,
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
        // A dry run changes nothing, the release log included.
        let context = self.publisher.job_context(
            client,
            &self.repositories,
            self.aggregate_repository.clone(),
            !self.dry_run,
            None,
            !self.no_reuse,
        )?;
        let spinner = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} checking {msg}").expect("a valid template"),
        );
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
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
        if let Some((globs, refusal)) = &walk.unexpanded {
            let globs: Vec<String> = globs.iter().map(ToString::to_string).collect();
            eprintln!(
                "refcat: cannot expand {} without the registry's _catalog ({refusal}): name those repositories with --repository NAME or --repositories-file FILE",
                globs.join(", ")
            );
        }
        let unreadable: Vec<_> = walk
            .errors
            .iter()
            .map(|(name, error)| json!({ "name": name, "error": error }))
            .collect();
        if self.dry_run {
            let images: Vec<String> = missing
                .iter()
                .map(|j| format!("{registry}/{}", j.key()))
                .collect();
            match self.format {
                OutputFormat::Text => images.iter().for_each(|i| println!("{i}")),
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "checked": walk.checked, "lacking": images, "unreadable": unreadable
                    }))?
                ),
            }
            return Ok(0);
        }
        let progress = Progress::new(missing.len());
        let results: Vec<(String, Result<Outcome, String>)> = futures_util::stream::iter(missing)
            .map(|j| {
                let (context, progress, registry) = (context.clone(), &progress, &registry);
                async move {
                    let key = format!("{registry}/{}", j.key());
                    let outcome = job::run(&context, j).await;
                    let said = match &outcome {
                        Ok(o) => o.as_str().to_string(),
                        Err(e) => format!("failed: {e}"),
                    };
                    progress.finish(&key, &said);
                    (key, outcome)
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        progress.clear();
        // The summaries the walk wrote gain what the jobs published.
        if let Err(e) = context.store_published().await {
            eprintln!("refcat: the repository summaries were not brought up to date: {e}");
        }
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
        if self.format == OutputFormat::Json {
            let images: Vec<_> = results
                .iter()
                .map(|(image, outcome)| match outcome {
                    Ok(o) => json!({ "image": image, "outcome": o.as_str() }),
                    Err(e) => json!({ "image": image, "outcome": "failed", "error": e }),
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "checked": walk.checked, "images": images, "unreadable": unreadable
                }))?
            );
        }
        let nothing_done = count(Outcome::Published) == 0 && walk.errors.is_empty();
        Ok(if !failed.is_empty() {
            super::EXIT_SCANNER
        } else if let Some((_, refusal)) = walk.unexpanded {
            super::exit_code(&refusal.into())
        } else if nothing_done && self.detailed_exitcode {
            EXIT_NOTHING_TO_DO
        } else {
            0
        })
    }
}
