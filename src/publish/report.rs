//! What a publish run tells its caller: per platform manifest, what was missing, what
//! it committed or copied, and what it cost.

use serde::Serialize;

use super::existing::Missing;
use crate::artifact::Format;
use crate::digest::Digest;

/// An artifact a run committed.
#[derive(Clone, Debug, Serialize)]
pub struct Published {
    /// Its format.
    pub format: Format,
    /// Its manifest digest.
    pub digest: Digest,
}

/// What happened to one platform manifest.
#[derive(Clone, Debug, Serialize)]
pub struct SubjectReport {
    /// `registry/repository@digest` of the platform manifest.
    pub subject: String,
    /// Its platform.
    pub platform: String,
    /// What CheckExisting found missing.
    pub missing: Missing,
    /// What this run committed.
    pub published: Vec<Published>,
    /// What this run copied from another repository's set for the same digest.
    pub reused: Vec<Published>,
    /// The repository it was copied from.
    pub reused_from: Option<String>,
    /// The platform manifest's digest.
    #[serde(skip)]
    pub digest: Digest,
    /// Older Grype artifacts this run deleted (`--keep`).
    pub pruned: Vec<Digest>,
    /// Wall time spent on this platform manifest, its share of the shared checks included.
    pub elapsed_seconds: f64,
    /// Of that, time spent waiting for syft and grype.
    pub scanner_seconds: f64,
}
