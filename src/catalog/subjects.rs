//! The subject index: for each platform manifest, the repositories where refcat has
//! published a complete set of its own for it. The worker stores it signed beside the
//! aggregate (`refcat-subjects`), and promotion reuse looks there, and only there, for a
//! set to copy: never a scan of the whole catalog per job, never a pusher's word.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::stored::StoredDocument;
use super::CatalogError;
use crate::digest::Digest;
use crate::media_types::SUBJECT_INDEX;
use crate::reference::{RepositoryName, SUBJECTS_TAG};
use crate::registry::Client;
use crate::trust::Trust;

/// The most repositories kept per subject: enough to find a copy, bounded however
/// often one image is promoted.
const MAX_REPOSITORIES: usize = 16;

/// The stored subject index's document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectIndex {
    /// Per platform manifest digest, the repositories holding refcat's complete set.
    pub subjects: BTreeMap<String, BTreeSet<String>>,
}

impl SubjectIndex {
    /// Notes that `repository` holds a complete set for `subject`; whether that is new.
    pub fn add(&mut self, subject: &Digest, repository: &RepositoryName) -> bool {
        let held = self.subjects.entry(subject.to_string()).or_default();
        held.len() < MAX_REPOSITORIES && held.insert(repository.to_string())
    }

    /// Adds every entry of `other`; whether anything was new.
    pub fn merge(&mut self, other: &SubjectIndex) -> bool {
        let mut changed = false;
        for (subject, repositories) in &other.subjects {
            let held = self.subjects.entry(subject.clone()).or_default();
            for repository in repositories {
                changed |= held.len() < MAX_REPOSITORIES && held.insert(repository.clone());
            }
        }
        changed
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    /// The repositories other than `except` that hold a set for `subject` (names that
    /// do not parse are left out).
    pub fn holders(&self, subject: &Digest, except: &RepositoryName) -> Vec<RepositoryName> {
        self.subjects
            .get(&subject.to_string())
            .into_iter()
            .flatten()
            .filter_map(|r| r.parse::<RepositoryName>().ok())
            .filter(|r| r != except)
            .collect()
    }

    /// Whether it says `repository` holds a set for `subject`.
    pub fn holds(&self, subject: &Digest, repository: &RepositoryName) -> bool {
        self.subjects
            .get(&subject.to_string())
            .is_some_and(|held| held.contains(repository.as_str()))
    }

    /// The index stored in `repository`, as `trust` lets it be read.
    pub async fn stored(
        client: &Client,
        repository: &RepositoryName,
        trust: &Trust,
    ) -> Result<Option<StoredDocument<SubjectIndex>>, CatalogError> {
        super::stored::read(client, repository, SUBJECTS_TAG, SUBJECT_INDEX, trust).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_bounded_and_exclude_the_asker() {
        let subject = crate::digest::sha256(b"image");
        let mut index = SubjectIndex::default();
        let repos: Vec<RepositoryName> =
            (0..20).map(|i| format!("r{i}").parse().unwrap()).collect();
        assert!(index.add(&subject, &repos[0]));
        assert!(index.holds(&subject, &repos[0]) && !index.holds(&subject, &repos[1]));
        assert!(!index.add(&subject, &repos[0]));
        for r in &repos[1..] {
            index.add(&subject, r);
        }
        assert_eq!(
            index.holders(&subject, &repos[0]).len(),
            MAX_REPOSITORIES - 1
        );
        let other = crate::digest::sha256(b"other");
        assert!(index.holders(&other, &repos[0]).is_empty());
        let mut merged = SubjectIndex::default();
        assert!(merged.merge(&index));
        assert!(!merged.merge(&index));
        assert_eq!(merged, index);
    }
}
