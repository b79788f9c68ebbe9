//! CheckExisting: refcat's own artifacts on a platform manifest, and what it still needs.
//! Only what verifies with the publisher's key is its own: another tool's SBOM, a set
//! signed with another key or an unsigned look-alike is never reused, never scanned
//! again, never pruned.

use crate::artifact::annotations::GRYPE_DB_BUILT;
use crate::artifact::{is_current, Format};
use crate::digest::Digest;
use crate::reference::RepositoryName;
use crate::registry::{Client, RegistryError};
use crate::trust::{Candidate, Candidates, Trust, Verified};

/// refcat's own artifacts on one platform manifest, newest first within each format.
#[derive(Clone, Debug, Default)]
pub struct Existing {
    /// Syft JSON artifacts.
    pub syft: Vec<Verified<Candidate>>,
    /// SPDX JSON artifacts.
    pub spdx: Vec<Verified<Candidate>>,
    /// Grype artifacts.
    pub grype: Vec<Verified<Candidate>>,
}

/// What a platform manifest still needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Missing {
    /// A Syft JSON artifact.
    pub syft: bool,
    /// An SPDX artifact.
    pub spdx: bool,
    /// A Grype artifact made with the current DB.
    pub grype: bool,
}

impl Missing {
    /// Everything: what `--force` asks for.
    pub const ALL: Missing = Missing {
        syft: true,
        spdx: true,
        grype: true,
    };

    /// Whether anything is missing.
    pub fn any(&self) -> bool {
        self.syft || self.spdx || self.grype
    }

    /// What is still missing once artifacts of `formats` are in place.
    pub fn without(self, formats: impl IntoIterator<Item = Format>) -> Missing {
        formats.into_iter().fold(self, |mut left, format| {
            match format {
                Format::SyftJson => left.syft = false,
                Format::SpdxJson => left.spdx = false,
                Format::GrypeJson => left.grype = false,
            }
            left
        })
    }
}

impl Existing {
    /// refcat's own artifacts of `formats` on `subject`: those whose signature verifies
    /// with `own`, the publisher's key. An artifact `own` proved before is not read again
    /// and its signature is checked again only after [`Trust::recheck_after`], so a
    /// long-running worker's walk mostly costs one referrers call per subject.
    ///
    /// Signatures are checked newest first, and per format only until one verifies: the
    /// newest own artifact is all that reuse, re-scans and `first_seen` need. With
    /// `every_grype` every Grype artifact is checked (pruning must know all of its own).
    pub async fn owned(
        client: &Client,
        repository: &RepositoryName,
        subject: &Digest,
        own: &Trust,
        formats: &[Format],
        every_grype: bool,
    ) -> Result<Existing, RegistryError> {
        let candidates = Candidates::read(client, repository, subject, formats, own).await?;
        let mut existing = Existing::default();
        for format in formats {
            let limit = if *format == Format::GrypeJson && every_grype {
                usize::MAX
            } else {
                1
            };
            let found = own
                .verified(client, repository, candidates.of(*format), limit)
                .await?;
            *existing.of_format_mut(*format) = found;
        }
        Ok(existing)
    }

    /// The artifacts of `format`, newest first.
    pub fn of_format(&self, format: Format) -> &[Verified<Candidate>] {
        match format {
            Format::SyftJson => &self.syft,
            Format::SpdxJson => &self.spdx,
            Format::GrypeJson => &self.grype,
        }
    }

    fn of_format_mut(&mut self, format: Format) -> &mut Vec<Verified<Candidate>> {
        match format {
            Format::SyftJson => &mut self.syft,
            Format::SpdxJson => &mut self.spdx,
            Format::GrypeJson => &mut self.grype,
        }
    }

    /// What is missing, given the built time of the Grype DB in use: a Grype artifact
    /// counts when its DB was built no earlier (an unreadable time counts as old).
    pub fn missing(&self, db_built: &str) -> Missing {
        let current_grype = self
            .grype
            .iter()
            .any(|own| is_current(own.get().annotation(GRYPE_DB_BUILT), db_built));
        Missing {
            syft: self.syft.is_empty(),
            spdx: self.spdx.is_empty(),
            grype: !current_grype,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_found_misses_everything() {
        let db = "2026-11-01T00:00:00Z";
        assert!(Existing::default().missing(db) == Missing::ALL);
    }
}
