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
pub mod stats;

use crate::reference::{RepositoryName, Tag, Target};

/// One image to publish for: a manifest or index, by digest (or by tag when the sender
/// named only tags, as Quay does), with the tag it was pushed under when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The repository.
    pub repository: RepositoryName,
    /// The image.
    pub target: Target,
}

impl Job {
    /// The tag the image was pushed under, when the event said.
    pub fn tag(&self) -> Option<&Tag> {
        match &self.target {
            Target::Tag(tag) | Target::Pinned(tag, _) => Some(tag),
            Target::Digest(_) => None,
        }
    }

    /// The deduplication key: `repository@digest` or `repository:tag`.
    pub fn key(&self) -> String {
        match &self.target {
            Target::Tag(tag) => format!("{}:{tag}", self.repository),
            Target::Digest(d) | Target::Pinned(_, d) => format!("{}@{d}", self.repository),
        }
    }
}
