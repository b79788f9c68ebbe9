//! `refcat publish`: signed Syft JSON, SPDX and Grype referrers for images.

use std::collections::HashSet;
use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::progress::Progress;
use super::{OutputFormat, PublisherArgs, RegistryArgs, EXIT_NOTHING_TO_DO};
use crate::oci::Platform;
use crate::publish::{ProgressSink, PublishOptions, Step};
use crate::reference::{Reference, Target};

/// Scan images with syft and grype and attach the results as signed referrers.
///
/// For every platform manifest of every image: a Syft JSON, an SPDX and a Grype
/// artifact, each signed with the key. What already exists (and, for Grype, was made
/// with the current Grype DB) is kept.
#[derive(Debug, Args)]
#[command(after_help = super::exit::PUBLISH_EXIT_CODES)]
pub struct PublishArgs {
    /// Images: registry/repository:tag or registry/repository@digest.
    #[arg(required_unless_present = "all_tags")]
    pub references: Vec<Reference>,
    /// Publish for every tag of this repository (registry/repository).
    #[arg(long, env = "REFCAT_ALL_TAGS", value_name = "REPOSITORY")]
    pub all_tags: Option<Reference>,
    /// Only platform manifests of this platform (os/arch[/variant]).
    #[arg(long, env = "REFCAT_PLATFORM")]
    pub platform: Option<Platform>,
    /// Print what is missing, as JSON, and change nothing. Still needs the key (and its
    /// password): what does not verify with it is not refcat's and counts as missing.
    #[arg(long, env = "REFCAT_DRY_RUN")]
    pub dry_run: bool,
    /// Scan again even when complete, current artifacts exist.
    #[arg(long, env = "REFCAT_FORCE")]
    pub force: bool,
    /// Report format on standard output (progress goes to standard error).
    #[arg(long, alias = "output", env = "REFCAT_FORMAT", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Exit 10 instead of 0 when everything was already there (Terraform's convention),
    /// so a script can tell a run that changed nothing.
    #[arg(long, env = "REFCAT_DETAILED_EXITCODE")]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub publisher: PublisherArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl PublishArgs {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<u8> {
        let mut references = self.references.clone();
        let registry = match (&self.all_tags, references.first()) {
            (Some(repo), _) => repo.registry.clone(),
            (None, Some(first)) => first.registry.clone(),
            (None, None) => anyhow::bail!("name an image or pass --all-tags"),
        };
        if let Some(other) = references.iter().find(|r| r.registry != registry) {
            anyhow::bail!("all images must be in one registry; {other} is not in {registry}");
        }
        let client = self.registry.client(&registry)?;
        if let Some(repo) = &self.all_tags {
            let mut tags = client.list_tags(&repo.repository, None).await?;
            // Referrers indexes and signatures live under tags too; they are not images.
            tags.retain(|t| !t.is_supporting());
            eprintln!("{} tags in {}/{}", tags.len(), registry, repo.repository);
            references.extend(tags.into_iter().map(|tag| Reference {
                target: Target::Tag(tag),
                ..repo.clone()
            }));
        }
        let progress = Arc::new(Progress::new(references.len()));
        let sink = {
            let progress = progress.clone();
            ProgressSink::new(move |platform, step| {
                let what = match step {
                    Step::Syft => "running syft",
                    Step::Grype => "running grype",
                    other => other.as_str(),
                };
                progress.step(&format!("{platform}: {what}"));
            })
        };
        let publisher = self.publisher.publisher(
            client,
            PublishOptions {
                platform: self.platform.clone(),
                force: self.force,
                progress: (!self.dry_run).then_some(sink),
                ..Default::default()
            },
        )?;
        if self.dry_run {
            let mut plan = Vec::new();
            for reference in &references {
                for (subject, _, missing) in publisher.plan(reference).await? {
                    plan.push(json!({
                        "reference": reference.to_string(),
                        "subject": reference.with_digest(subject.descriptor.digest.clone()).to_string(),
                        "platform": subject.platform.to_string(),
                        "missing": missing,
                    }));
                }
            }
            println!("{}", serde_json::to_string_pretty(&plan)?);
            return Ok(0);
        }
        let mut done = HashSet::new();
        let (mut reports, mut failed) = (Vec::new(), Vec::new());
        for reference in &references {
            progress.begin(reference.to_string());
            // One image failing says nothing about the next: each is tried and reported.
            let published = match publisher.publish(reference).await {
                Ok(published) => published,
                Err(e) => {
                    let e = anyhow::Error::from(e);
                    progress.finish(&reference.to_string(), &format!("failed: {e:#}"));
                    failed.push((reference.to_string(), e));
                    continue;
                }
            };
            let attached: usize = published.iter().map(|r| r.published.len()).sum();
            progress.finish(
                &reference.to_string(),
                &match attached {
                    0 => "complete".to_string(),
                    n => format!("published {n} artifact(s)"),
                },
            );
            for report in published {
                if !done.insert(report.subject.clone()) {
                    continue;
                }
                if self.format == OutputFormat::Text {
                    if report.published.is_empty() {
                        println!("{} ({}): complete", report.subject, report.platform);
                    } else {
                        let formats: Vec<String> = report
                            .published
                            .iter()
                            .map(|p| format!("{} {}", p.format.as_str(), p.digest))
                            .collect();
                        println!(
                            "{} ({}): published {}",
                            report.subject,
                            report.platform,
                            formats.join(", ")
                        );
                        for pruned in &report.pruned {
                            println!("  deleted older grype-json {pruned} (--keep)");
                        }
                    }
                }
                reports.push(report);
            }
        }
        progress.clear();
        if self.format == OutputFormat::Json {
            let mut out = serde_json::to_value(&reports)?;
            let entries = out.as_array_mut().expect("reports serialize as an array");
            for (reference, e) in &failed {
                entries.push(json!({ "reference": reference, "error": format!("{e:#}") }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        if let Some((_, first)) = failed.first() {
            eprintln!(
                "refcat: {} of {} images failed",
                failed.len(),
                references.len()
            );
            return Ok(super::exit_code(first));
        }
        let nothing_done = reports.iter().all(|r| r.published.is_empty());
        Ok(if nothing_done && self.detailed_exitcode {
            EXIT_NOTHING_TO_DO
        } else {
            0
        })
    }
}
