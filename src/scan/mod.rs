//! Running syft and grype: the only code in refcat that spawns processes.
//!
//! syft reads an image straight from the registry and writes Syft JSON and SPDX JSON
//! in one run; grype reads that Syft JSON, always offline, never the image. The bytes
//! they print are kept exactly; [`report`] reads what refcat needs from them.

mod grype;
mod process;
pub mod report;
mod syft;

use std::path::PathBuf;
use std::time::Duration;

pub use grype::{DbStatus, Grype, GrypeResult, SbomToMatch};
pub use process::remove_stale_scratch;
pub use syft::{ImageSource, Sboms, Syft};

/// What went wrong running a scanner.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The program could not be started.
    #[error(
        "cannot run {program}: {source} (is it installed? `just tools` installs the pinned one)"
    )]
    Spawn {
        /// The program path.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The program ran past its timeout and was killed.
    #[error("{tool} did not finish {what} within {timeout:?}; it was stopped")]
    Timeout {
        /// syft or grype.
        tool: &'static str,
        /// What it was doing.
        what: String,
        /// The limit.
        timeout: Duration,
    },
    /// The program exited with a failure.
    #[error("{tool} failed {what} ({status}): {stderr}")]
    Failed {
        /// syft or grype.
        tool: &'static str,
        /// What it was doing.
        what: String,
        /// Its exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// The program exited 0 but its output is not what it should be.
    #[error("{tool} gave unusable output {what}: {reason}")]
    Output {
        /// syft or grype.
        tool: &'static str,
        /// What it was doing.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// A scratch file could not be written or read.
    #[error("scratch file for {tool}: {source}")]
    Io {
        /// syft or grype.
        tool: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The name and version of a scanner, as recorded on the artifacts it made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannerVersion {
    /// `syft` or `grype`.
    pub name: &'static str,
    /// e.g. `1.51.0`.
    pub version: String,
}
