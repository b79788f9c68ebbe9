//! The per-digest publishing pipeline, an explicit state machine in the spirit of
//! claircore's indexer. For each platform manifest behind a reference:
//!
//! ```text
//! Resolve → CheckExisting → Syft → Grype → Attach → Sign → Commit → Done
//! ```
//!
//! - **Resolve**: an index becomes its platform manifests (attestations skipped), by
//!   [`crate::catalog::platforms`].
//! - **CheckExisting**: a referrers call per platform manifest nominates candidates;
//!   only those whose manifest names the subject and whose signature verifies with the
//!   publisher's key count ([`Existing::owned`]), and they decide what is missing.
//! - **Syft**: one run writes Syft JSON and SPDX JSON.
//! - **Grype**: runs offline on the Syft JSON, this run's or the one in the registry.
//! - **Attach**: the artifacts' blobs.
//! - **Sign**: each artifact's signature (Sigstore bundle referrer or legacy `.sig` tag),
//!   pushed before the artifact itself.
//! - **Commit**: the artifact manifests, which makes them visible to referrers listings.
//!
//! Every step is idempotent, and the artifact manifest is the last thing written: a run
//! that dies anywhere leaves nothing a reader could take for a complete, signed result,
//! and the next run finishes the job. Syft/SPDX are committed before grype runs, so a
//! grype failure keeps the SBOMs and the next run retries only Grype.

mod commit;
mod existing;
mod pipeline;
mod prune;
mod report;
mod reuse;
mod signable;
mod stored;

use std::fmt;
use std::sync::Arc;

pub use existing::{Existing, Missing};
pub use pipeline::{PublishOptions, Publisher};
pub use report::{Published, SubjectReport};
pub use signable::{GrypeRun, Signable};

use crate::registry::RegistryError;
use crate::scan::report::ReportError;
use crate::scan::ScanError;

/// A pipeline step, for progress, the dry-run plan, latency metrics and crash testing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Expand the reference into platform manifests.
    Resolve,
    /// One referrers call decides what is missing.
    CheckExisting,
    /// Run syft.
    Syft,
    /// Run grype.
    Grype,
    /// Push the artifacts' blobs.
    Attach,
    /// Push the artifacts' signatures.
    Sign,
    /// Push the artifact manifests.
    Commit,
    /// Nothing left to do.
    Done,
}

impl Step {
    /// The step's name, as `REFCAT_ABORT_AFTER` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Resolve => "resolve",
            Step::CheckExisting => "check-existing",
            Step::Syft => "syft",
            Step::Grype => "grype",
            Step::Attach => "attach",
            Step::Sign => "sign",
            Step::Commit => "commit",
            Step::Done => "done",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hears when a long step begins for a platform manifest (`linux/amd64`, [`Step::Syft`]),
/// for a progress display.
#[derive(Clone)]
pub struct ProgressSink(Arc<Tell>);

type Tell = dyn Fn(&crate::oci::Platform, Step) + Send + Sync;

impl ProgressSink {
    /// A sink calling `tell`.
    pub fn new(tell: impl Fn(&crate::oci::Platform, Step) + Send + Sync + 'static) -> Self {
        ProgressSink(Arc::new(tell))
    }

    pub(crate) fn tell(&self, platform: &crate::oci::Platform, step: Step) {
        (self.0)(platform, step)
    }
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressSink")
    }
}

/// How signatures are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SignatureFormat {
    /// cosign v3's default: a Sigstore bundle v0.3 referrer of the artifact.
    #[default]
    Bundle,
    /// The legacy `sha256-<hex>.sig` simple-signing tag.
    Legacy,
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The registry failed or refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// syft or grype failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// grype's output could not be read.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The reference did not resolve to platform manifests.
    #[error(transparent)]
    Resolve(#[from] crate::catalog::platforms::ResolveError),
    /// An artifact refcat stored earlier cannot be read from the registry.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// An artifact refcat stored earlier cannot be read back.
    #[error(transparent)]
    Content(#[from] crate::trust::ContentError),
    /// An artifact refcat stored earlier cannot be read back.
    #[error("a stored artifact is unusable: {0}")]
    Stored(String),
    /// The stream's previous release, which a first Grype artifact carries `first_seen`
    /// over from, could not be found.
    #[error("the stream's previous release is unknown: {0}")]
    Predecessor(String),
    /// The subject's lock across replicas was lost before the artifacts were committed.
    #[error(transparent)]
    LockLost(#[from] crate::locks::LockLost),
    /// The registry does not let refcat push to the repository; found out before any
    /// scan runs.
    #[error("cannot push to {repository}: {source} (refcat attaches its artifacts there: give its credentials push access, or check that the registry is not read-only)")]
    NotWritable {
        /// The repository.
        repository: String,
        /// What the registry answered.
        source: RegistryError,
    },
}
