//! `refcat discover`: the referrers tree of an image.

use clap::{Args, ValueEnum};

use super::RegistryArgs;
use crate::catalog::referrers_tree::{referrers_tree, render_tree, TreeOptions};
use crate::oci::Platform;
use crate::reference::Reference;

/// Output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// An indented tree.
    Tree,
    /// The JSON `oras discover --format json` prints.
    Json,
}

/// Show the referrers of an image, recursively.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The image: registry/repository[:tag][@digest].
    pub reference: Reference,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Tree)]
    pub format: Format,
    /// Only referrers of this artifact type.
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: Option<String>,
    /// For a multi-platform image: start at this platform's manifest (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<Platform>,
    /// Levels of referrers to follow (default: all).
    #[arg(long)]
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
            Format::Tree => print!("{}", render_tree(&tree)),
            Format::Json => println!("{}", serde_json::to_string_pretty(&tree)?),
        }
        Ok(())
    }
}
