//! Where syft and grype are and how long they may run.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::scan::{Grype, Syft};

/// Options for the scanners refcat runs.
#[derive(Debug, Args)]
pub struct ScannerArgs {
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
    /// Grype's DB directory (grype's own default when unset). grype never updates it.
    #[arg(long, env = "GRYPE_DB_CACHE_DIR", value_name = "DIR")]
    pub grype_db_dir: Option<PathBuf>,
    /// Seconds one syft or grype run may take before it is stopped.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub scan_timeout: u64,
}

impl ScannerArgs {
    /// The configured syft and grype.
    pub fn scanners(&self) -> (Syft, Grype) {
        let timeout = Duration::from_secs(self.scan_timeout.max(1));
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
