//! Candidates for refcat's artifacts on a platform manifest, by format.
//!
//! A referrers listing only nominates candidates. Anyone with push access can attach an
//! SBOM with the same artifactType, and on a registry without the referrers API can
//! rewrite the listing itself (its annotations included), so nothing is taken from it:
//! each candidate's manifest is read by digest, its `subject` must be the platform
//! manifest and its artifactType one of refcat's, and its annotations (`created`, the
//! Grype DB build, the counts) come from that manifest, which a signature covers. Whose
//! artifact it is, [`super::Trust`] decides.

use std::cmp::Reverse;

use futures_util::{stream, StreamExt as _, TryStreamExt as _};
use time::OffsetDateTime;

use super::Trust;
use crate::artifact::annotations::{CREATED, FORMAT};
use crate::artifact::Format;
use crate::digest::Digest;
use crate::oci::{Descriptor, ImageManifest, Manifest};
use crate::reference::{RepositoryName, Target};
use crate::registry::{Client, RegistryError};

/// Candidates whose manifests are read at once.
const CONCURRENCY: usize = 8;

/// Candidates read per format at once. A signer writes one per scan; anyone with push
/// access can attach thousands of look-alikes, and each costs a manifest read and a
/// signature check. Past this many, those proved before go first, then those not judged
/// yet (newest by their own claim), and those already found wanting last: a flood of
/// look-alikes delays finding refcat's own result by a few reads, but cannot hide it,
/// as each look-alike is judged once per recheck interval.
pub const MAX_CANDIDATES: usize = 64;

/// An artifact in one of refcat's formats, read back from the registry: a candidate
/// until [`super::Trust`] has judged its signature.
#[derive(Clone, Debug)]
pub struct Candidate {
    descriptor: Descriptor,
    manifest: ImageManifest,
}

impl Candidate {
    /// A manifest read by tag (a catalog document), its annotations from itself.
    pub(super) fn tagged(mut descriptor: Descriptor, manifest: ImageManifest) -> Self {
        descriptor.artifact_type = manifest.artifact_type.clone();
        descriptor.annotations = manifest.annotations.clone();
        Candidate {
            descriptor,
            manifest,
        }
    }

    /// The candidate's manifest digest.
    pub fn digest(&self) -> &Digest {
        &self.descriptor.digest
    }

    /// Its descriptor: digest and size as listed, artifactType and annotations from its
    /// manifest (never from the listing, which no signature covers).
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// Its manifest, read by digest.
    pub fn manifest(&self) -> &ImageManifest {
        &self.manifest
    }

    /// A manifest annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.descriptor.annotations.get(key).map(String::as_str)
    }

    /// When it says it was made; an unreadable date sorts as the oldest.
    pub fn created(&self) -> Option<OffsetDateTime> {
        crate::artifact::parse_time(self.annotation(CREATED)?)
    }

    /// Whether the manifest says refcat made it (names its format the way refcat does).
    /// Only a claim: a signature that verifies with the publisher's key proves it.
    pub fn claims_refcat(&self) -> bool {
        let format = Format::of_artifact_type(self.descriptor.artifact_type.as_deref());
        format.is_some_and(|f| self.annotation(FORMAT) == Some(f.as_str()))
    }
}

/// Candidates in refcat's formats on one platform manifest, newest first within each
/// format.
#[derive(Clone, Debug, Default)]
pub struct Candidates {
    syft: Vec<Candidate>,
    spdx: Vec<Candidate>,
    grype: Vec<Candidate>,
}

impl Candidates {
    /// The candidates of `formats` on `subject`: listed referrers whose manifest, read by
    /// digest, names `subject` and one of refcat's artifactTypes. A listed manifest that
    /// is gone is left out. Past [`MAX_CANDIDATES`] a format, those `trust` proved
    /// before are read first, then the newest by the listing's own claim.
    pub async fn read(
        client: &Client,
        repository: &RepositoryName,
        subject: &Digest,
        formats: &[Format],
        trust: &Trust,
    ) -> Result<Candidates, RegistryError> {
        let referrers = client.referrers(repository, subject, None).await?;
        let mut nominated: Vec<(Format, Descriptor)> = referrers
            .into_iter()
            .filter_map(|d| Some((Format::of(&d).filter(|f| formats.contains(f))?, d)))
            .collect();
        let mut chosen = Vec::with_capacity(nominated.len().min(3 * MAX_CANDIDATES));
        for format in formats {
            let (mut of_format, rest): (Vec<_>, Vec<_>) =
                nominated.into_iter().partition(|(f, _)| f == format);
            nominated = rest;
            if of_format.len() > MAX_CANDIDATES {
                tracing::warn!(%repository, %subject, format = format.as_str(), listed = of_format.len(),
                    "more look-alike artifacts than any scanner writes; only {MAX_CANDIDATES} are read");
                let mut ranked = Vec::with_capacity(of_format.len());
                for (f, d) in of_format {
                    let rank = trust.known(repository, &d.digest).await;
                    let claimed = d
                        .annotations
                        .get(CREATED)
                        .and_then(|t| crate::artifact::parse_time(t));
                    ranked.push((rank, Reverse(claimed), f, d));
                }
                ranked.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
                of_format = ranked
                    .into_iter()
                    .take(MAX_CANDIDATES)
                    .map(|(_, _, f, d)| (f, d))
                    .collect();
            }
            chosen.extend(of_format);
        }
        let read: Vec<Option<(Descriptor, ImageManifest)>> = stream::iter(chosen)
            .map(|(_, listed)| async move {
                if let Some(manifest) = trust.proved_manifest(repository, &listed.digest).await {
                    return Ok(Some((listed, manifest.as_ref().clone())));
                }
                let target = Target::Digest(listed.digest.clone());
                match client.get_manifest(repository, &target).await {
                    Ok(fetched) => match fetched.manifest {
                        Manifest::Image(m) => Ok(Some((listed, m))),
                        Manifest::Index(_) => Ok(None),
                    },
                    Err(e) if e.is_not_found() => {
                        tracing::warn!(%repository, artifact = %listed.digest, "a listed referrer's manifest is gone; left out");
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(Candidates::from_manifests(
            subject,
            read.into_iter().flatten(),
        ))
    }

    /// Sorts artifact manifests into formats, keeping those whose `subject` is
    /// `subject`, newest first by their own `created`. Private: a candidate pairs a
    /// digest with the manifest read by that digest, and only [`Candidates::read`]
    /// reads one.
    fn from_manifests(
        subject: &Digest,
        read: impl IntoIterator<Item = (Descriptor, ImageManifest)>,
    ) -> Candidates {
        let mut out = Candidates::default();
        for (listed, manifest) in read {
            if manifest.subject.as_ref().map(|s| &s.digest) != Some(subject) {
                tracing::warn!(artifact = %listed.digest, %subject, "a referrer whose manifest names another subject; left out");
                continue;
            }
            let Some(format) = Format::of_artifact_type(manifest.artifact_type.as_deref()) else {
                continue;
            };
            let mut descriptor = listed;
            descriptor.artifact_type = manifest.artifact_type.clone();
            descriptor.annotations = manifest.annotations.clone();
            out.of_format_mut(format).push(Candidate {
                descriptor,
                manifest,
            });
        }
        for list in [&mut out.syft, &mut out.spdx, &mut out.grype] {
            // Newest first by time, not by text: `created: "~"` sorts after any date as
            // text, and an unreadable date is the oldest. Ties keep the listing's order.
            list.sort_by_key(|c| Reverse(c.created()));
        }
        out
    }

    /// The candidates of `format`, newest first.
    pub fn of(&self, format: Format) -> &[Candidate] {
        match format {
            Format::SyftJson => &self.syft,
            Format::SpdxJson => &self.spdx,
            Format::GrypeJson => &self.grype,
        }
    }

    fn of_format_mut(&mut self, format: Format) -> &mut Vec<Candidate> {
        match format {
            Format::SyftJson => &mut self.syft,
            Format::SpdxJson => &mut self.spdx,
            Format::GrypeJson => &mut self.grype,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::annotations::GRYPE_DB_BUILT;
    use crate::media_types::{EMPTY_JSON, GRYPE_JSON, OCI_MANIFEST, SPDX_JSON, SYFT_JSON};

    fn subject() -> Digest {
        crate::digest::sha256(b"platform manifest")
    }

    /// A listed referrer and its manifest: `listed` annotations on the descriptor,
    /// `signed` ones in the manifest.
    pub(crate) fn artifact(
        artifact_type: &str,
        of: &Digest,
        listed: &[(&str, &str)],
        signed: &[(&str, &str)],
    ) -> (Descriptor, ImageManifest) {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let digest = crate::digest::sha256(format!("{artifact_type}{signed:?}{of}").as_bytes());
        let mut descriptor = Descriptor::new(OCI_MANIFEST, digest, 1);
        descriptor.artifact_type = Some(artifact_type.into());
        descriptor.annotations = map(listed);
        let manifest = ImageManifest {
            schema_version: 2,
            artifact_type: Some(artifact_type.into()),
            config: Descriptor::new(EMPTY_JSON, crate::digest::sha256(b"{}"), 2),
            subject: Some(Descriptor::new(OCI_MANIFEST, of.clone(), 1)),
            annotations: map(signed),
            media_type: Some(OCI_MANIFEST.into()),
            layers: Vec::new(),
        };
        (descriptor, manifest)
    }

    #[test]
    fn annotations_come_from_the_manifest_never_the_listing() {
        let forged_listing = [
            (GRYPE_DB_BUILT, "2099-01-01T00:00:00Z"),
            (CREATED, "2099-01-01T00:00:00Z"),
        ];
        let signed = [
            (GRYPE_DB_BUILT, "2026-11-01T00:00:00Z"),
            (CREATED, "2026-11-01T00:00:00Z"),
        ];
        let found = Candidates::from_manifests(
            &subject(),
            [artifact(GRYPE_JSON, &subject(), &forged_listing, &signed)],
        );
        let grype = found.of(Format::GrypeJson);
        assert_eq!(
            grype[0].annotation(GRYPE_DB_BUILT),
            Some("2026-11-01T00:00:00Z")
        );
    }

    #[test]
    fn a_manifest_for_another_subject_or_type_is_left_out() {
        let other = crate::digest::sha256(b"another image");
        let mut renamed = artifact(SPDX_JSON, &subject(), &[(FORMAT, "spdx-json")], &[]);
        // The listing claims SPDX; the manifest says otherwise.
        renamed.1.artifact_type = Some("application/vnd.other".into());
        let found = Candidates::from_manifests(
            &subject(),
            [
                artifact(GRYPE_JSON, &other, &[], &[]),
                renamed,
                artifact(SYFT_JSON, &subject(), &[], &[]),
            ],
        );
        assert!(found.of(Format::GrypeJson).is_empty() && found.of(Format::SpdxJson).is_empty());
        assert_eq!(found.of(Format::SyftJson).len(), 1);
    }

    #[test]
    fn newest_is_decided_by_time_not_text() {
        let at = |created: &str| {
            artifact(
                GRYPE_JSON,
                &subject(),
                &[],
                &[(CREATED, created), ("n", created)],
            )
        };
        let found = Candidates::from_manifests(
            &subject(),
            [
                at("~ not a date"),
                at("2026-11-01T00:00:00Z"),
                at("2026-11-01T00:00:00.5Z"),
                at("2026-10-31T23:00:00-02:00"),
            ],
        );
        let order: Vec<&str> = found
            .of(Format::GrypeJson)
            .iter()
            .map(|c| c.annotation(CREATED).unwrap())
            .collect();
        assert_eq!(
            order,
            [
                "2026-10-31T23:00:00-02:00",
                "2026-11-01T00:00:00.5Z",
                "2026-11-01T00:00:00Z",
                "~ not a date"
            ]
        );
    }
}
