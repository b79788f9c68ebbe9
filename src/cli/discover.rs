//! `refcat discover`: the referrers tree of an image.

use clap::Args;

use super::{OutputFormat, RegistryArgs};
use crate::catalog::referrers_tree::{referrers_tree, render_tree, TreeOptions};
use crate::oci::Platform;
use crate::reference::Reference;

/// Show the referrers of an image, recursively.
#[derive(Debug, Args)]
#[command(after_help = super::exit::DISCOVER_EXIT_CODES)]
pub struct DiscoverArgs {
    /// The image: registry/repository[:tag][@digest].
    pub reference: Reference,
    /// Output format: an indented tree, or the JSON `oras discover --format json` prints.
    #[arg(long, alias = "output", env = "REFCAT_FORMAT", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Only referrers of this artifact type.
    #[arg(long, env = "REFCAT_ARTIFACT_TYPE", value_name = "TYPE")]
    pub artifact_type: Option<String>,
    /// For a multi-platform image: start at this platform's manifest (os/arch[/variant]).
    #[arg(long, env = "REFCAT_PLATFORM")]
    pub platform: Option<Platform>,
    /// Levels of referrers to follow (default: all).
    #[arg(long, env = "REFCAT_DEPTH", value_name = "N")]
    pub depth: Option<usize>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl DiscoverArgs {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<()> {
        let client = self.registry.client(&self.reference.registry)?;
        let options = TreeOptions {
            artifact_type: self.artifact_type,
            platform: self.platform,
            depth: self.depth,
        };
        let tree = referrers_tree(&client, &self.reference, &options).await?;
        match self.format {
            OutputFormat::Text => print!("{}", render_tree(&tree)),
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&tree)?),
        }
        Ok(())
    }
}
