//! Which repositories `serve`, `worker` and `backfill` cover.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::catalog::repositories::{parse_list, Repositories, RepositoryPattern};
use crate::reference::RepositoryName;
use crate::trust::Trust;

/// Repositories to cover instead of every one `_catalog` lists.
#[derive(Debug, Args)]
pub struct RepositoryArgs {
    /// Cover this repository; repeatable. Globs select from `_catalog`: `*` within a path
    /// component (`team/*`), `**` across them. Needed where the registry has no
    /// `_catalog` or keeps it for admins (GHCR, Docker Hub, Harbor).
    #[arg(
        long,
        env = "REFCAT_REPOSITORY",
        value_delimiter = ',',
        value_name = "NAME|GLOB"
    )]
    pub repository: Vec<RepositoryPattern>,
    /// Cover the repositories in this file: one name or glob a line, `#` comments.
    #[arg(long, env = "REFCAT_REPOSITORIES_FILE", value_name = "FILE")]
    pub repositories_file: Option<PathBuf>,
}

impl RepositoryArgs {
    /// The covered repositories, never `aggregate` (where the catalog aggregate is
    /// stored); a stored repository list counts as `trust` lets it.
    pub fn repositories(
        &self,
        aggregate: Option<RepositoryName>,
        trust: Trust,
    ) -> anyhow::Result<Repositories> {
        let mut patterns = self.repository.clone();
        if let Some(path) = &self.repositories_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --repositories-file {}", path.display()))?;
            let listed =
                parse_list(&text, &path.display().to_string()).map_err(anyhow::Error::msg)?;
            if listed.is_empty() {
                anyhow::bail!(
                    "--repositories-file {} names no repository (an empty selection would mean every one)",
                    path.display()
                );
            }
            patterns.extend(listed);
        }
        Ok(Repositories::new(patterns, aggregate, trust))
    }
}
