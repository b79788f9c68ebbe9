//! `refcat worker`: keeps a registry covered with no one running commands. Registry
//! events ([`events`]) and a periodic walk ([`reconcile`]) yield jobs; a bounded,
//! deduplicated [`queue`] runs them through the publish pipeline; [`intake`] is the
//! authenticated webhook endpoint.

pub mod aggregate;
pub mod auth;
pub mod events;
pub mod exposure;
pub mod intake;
pub mod job;
pub mod queue;
pub mod reconcile;
mod release_keeper;
pub mod stats;
pub mod summaries;
pub mod tasks;

use crate::reference::{RepositoryName, Tag, Target};

/// One image to publish for: a manifest or index, by digest (or by tag when the sender
/// named only tags, as Quay does), with the tag it was pushed under when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The repository.
    pub repository: RepositoryName,
    /// The image.
    pub target: Target,
    /// The Grype DB build a walk judged the image against (RFC 3339): a replica whose DB
    /// is older must not judge its own older result current. Not part of the key.
    pub db_built: Option<String>,
}

impl Job {
    /// A job for `target` in `repository`.
    pub fn new(repository: RepositoryName, target: Target) -> Self {
        Job {
            repository,
            target,
            db_built: None,
        }
    }

    /// The tag the image was pushed under, when the event said.
    pub fn tag(&self) -> Option<&Tag> {
        match &self.target {
            Target::Tag(tag) | Target::Pinned(tag, _) => Some(tag),
            Target::Digest(_) => None,
        }
    }

    /// The deduplication key: `repository@digest`, `repository:tag` or
    /// `repository:tag@digest`. Two tags of one image are two jobs: each records its
    /// tag in the release log, and the release a tag left must be looked after even when
    /// another tag moved to the same image a moment before (the publish itself is done
    /// once; the second job only checks).
    pub fn key(&self) -> String {
        match &self.target {
            Target::Tag(tag) => format!("{}:{tag}", self.repository),
            Target::Digest(d) => format!("{}@{d}", self.repository),
            Target::Pinned(tag, d) => format!("{}:{tag}@{d}", self.repository),
        }
    }
}
