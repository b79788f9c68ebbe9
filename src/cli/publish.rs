//! `refcat publish`: signed Syft JSON, SPDX and Grype referrers for images.

use std::collections::HashSet;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::{PublisherArgs, RegistryArgs, EXIT_NOTHING_TO_DO};
use crate::oci::Platform;
use crate::publish::PublishOptions;
use crate::reference::{Reference, Target};

/// Output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    /// One line per platform manifest.
    Text,
    /// A JSON report.
    Json,
}

/// Scan images with syft and grype and attach the results as signed referrers.
///
/// For every platform manifest of every image: a Syft JSON, an SPDX and a Grype
/// artifact, each signed with the key. What already exists (and, for Grype, was made
/// with the current Grype DB) is kept. Exit codes: 0 published, 10 nothing to do,
/// 2 bad input, 3 not found, 4 auth, 5 registry unavailable, 6 a scanner failed, 1 other.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Images: registry/repository:tag or registry/repository@digest.
    #[arg(required_unless_present = "all_tags")]
    pub references: Vec<Reference>,
    /// Publish for every tag of this repository (registry/repository).
    #[arg(long, value_name = "REPOSITORY")]
    pub all_tags: Option<Reference>,
    /// Only platform manifests of this platform (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<Platform>,
    /// Print what is missing, as JSON, and change nothing. Still needs the key (and its
    /// password): what does not verify with it is not refcat's and counts as missing.
    #[arg(long)]
    pub dry_run: bool,
    /// Scan again even when complete, current artifacts exist.
    #[arg(long)]
    pub force: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
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
        let publisher = self.publisher.publisher(
            client,
            PublishOptions {
                platform: self.platform.clone(),
                force: self.force,
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
            // One image failing says nothing about the next: each is tried and reported.
            let published = match publisher.publish(reference).await {
                Ok(published) => published,
                Err(e) => {
                    let e = anyhow::Error::from(e);
                    eprintln!("refcat: {reference}: {e:#}");
                    failed.push((reference.to_string(), e));
                    continue;
                }
            };
            for report in published {
                if !done.insert(report.subject.clone()) {
                    continue;
                }
                if let Output::Text = self.output {
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
        if let Output::Json = self.output {
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
        Ok(if reports.iter().any(|r| !r.published.is_empty()) {
            0
        } else {
            EXIT_NOTHING_TO_DO
        })
    }
}
