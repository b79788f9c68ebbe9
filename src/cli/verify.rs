//! `refcat verify`: check the signature of every refcat artifact of an image.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::key_args::load_public_keys;
use super::{OutputFormat, RegistryArgs, EXIT_UNVERIFIED};
use crate::artifact::Format;
use crate::catalog::platforms::platform_manifests;
use crate::oci::Platform;
use crate::reference::Reference;
use crate::trust::{Candidates, Trust, Verdict};

/// Verify the signature of every refcat artifact of an image against public keys.
///
/// An artifact counts as refcat's when its manifest says so (`dev.refcat.format`); other
/// tools' SBOMs of the same types are left out, and counted on stderr.
#[derive(Debug, Args)]
#[command(after_help = super::exit::VERIFY_EXIT_CODES)]
pub struct VerifyArgs {
    /// The image: registry/repository:tag or registry/repository@digest.
    pub reference: Reference,
    /// Public key file(s), as `cosign generate-key-pair` writes cosign.pub.
    #[arg(
        long,
        env = "REFCAT_KEY",
        value_delimiter = ',',
        required = true,
        value_name = "FILE"
    )]
    pub key: Vec<PathBuf>,
    /// Only platform manifests of this platform (os/arch[/variant]).
    #[arg(long, env = "REFCAT_PLATFORM")]
    pub platform: Option<Platform>,
    /// Output format: a table, or JSON.
    #[arg(long, alias = "output", env = "REFCAT_FORMAT", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Serialize)]
struct Row {
    subject: String,
    platform: String,
    format: Format,
    artifact: String,
    #[serde(flatten)]
    verdict: Verdict,
}

impl VerifyArgs {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<u8> {
        let trust = Trust::checking(load_public_keys(&self.key)?, false)?;
        let client = self.registry.client(&self.reference.registry)?;
        let repository = &self.reference.repository;
        let (mut rows, mut foreign) = (Vec::new(), 0);
        for subject in platform_manifests(&client, &self.reference, self.platform.as_ref()).await? {
            let digest = &subject.descriptor.digest;
            let found = Candidates::read(&client, repository, digest, &Format::ALL, &trust).await?;
            for format in Format::ALL {
                for artifact in found.of(format) {
                    // Another tool's SBOM on the same image is not refcat's to judge.
                    if !artifact.claims_refcat() {
                        foreign += 1;
                        continue;
                    }
                    rows.push(Row {
                        subject: subject.descriptor.digest.to_string(),
                        platform: subject.platform.to_string(),
                        format,
                        artifact: artifact.digest().to_string(),
                        verdict: trust
                            .verdict(&client, repository, artifact.digest())
                            .await?,
                    });
                }
            }
        }
        match self.format {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
            OutputFormat::Text => {
                println!(
                    "{:<14} {:<11} {:<73} VERDICT",
                    "PLATFORM", "FORMAT", "ARTIFACT"
                );
                for row in &rows {
                    let verdict = match &row.verdict {
                        Verdict::Verified { format } => format!("verified ({format})"),
                        Verdict::Invalid { reason } => format!("INVALID: {reason}"),
                        Verdict::Unsigned => "UNSIGNED".to_string(),
                        Verdict::NotChecked => "NOT CHECKED".to_string(),
                    };
                    println!(
                        "{:<14} {:<11} {:<73} {verdict}",
                        row.platform,
                        row.format.as_str(),
                        row.artifact
                    );
                }
            }
        }
        if foreign > 0 {
            eprintln!("refcat: left out {foreign} artifact(s) of the same types that do not say refcat made them");
        }
        if rows.is_empty() {
            eprintln!("refcat: {} has no refcat artifacts", self.reference);
            return Ok(EXIT_UNVERIFIED);
        }
        Ok(if rows.iter().all(|r| r.verdict.is_verified()) {
            0
        } else {
            EXIT_UNVERIFIED
        })
    }
}
