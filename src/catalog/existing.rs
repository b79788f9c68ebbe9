//! refcat's artifacts on a platform manifest, sorted by format: what publish's
//! CheckExisting decides on, and what the views read.
//!
//! A referrers listing only nominates candidates. Anyone with push access can attach
//! an SBOM with the same artifactType, and on a registry without the referrers API can
//! rewrite the listing itself (its annotations included), so nothing is taken from it:
//! each candidate's manifest is read by digest, its `subject` must be the platform
//! manifest and its artifactType one of refcat's, and its annotations (`created`,
//! the Grype DB build, the counts) come from that manifest, which the signature covers.
//! Whose artifact it is, is then decided by [`Existing::owned`]: only what verifies
//! with the publisher's key is refcat's.

use futures_util::{stream, StreamExt as _, TryStreamExt as _};

use super::signatures::{Trust, Verdict};
use crate::artifact::annotations::{CREATED, FORMAT, GRYPE_DB_BUILT};
use crate::digest::Digest;
use crate::media_types::{GRYPE_JSON, SPDX_JSON, SYFT_JSON};
use crate::oci::{Descriptor, ImageManifest, Manifest};
use crate::reference::{RepositoryName, Target};
use crate::registry::{Client, RegistryError};

/// Candidates whose manifests are read at once.
const CONCURRENCY: usize = 8;

/// The outputs refcat attaches, by their scanners' `-o` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Syft's native JSON SBOM.
    SyftJson,
    /// SPDX JSON SBOM.
    SpdxJson,
    /// Grype's JSON results.
    GrypeJson,
}

impl Format {
    /// Every format, in the order refcat publishes them.
    pub const ALL: [Format; 3] = [Format::SyftJson, Format::SpdxJson, Format::GrypeJson];

    /// The name in `dev.refcat.format`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::SyftJson => "syft-json",
            Format::SpdxJson => "spdx-json",
            Format::GrypeJson => "grype-json",
        }
    }

    /// The artifactType of artifacts in this format.
    pub fn artifact_type(self) -> &'static str {
        match self {
            Format::SyftJson => SYFT_JSON,
            Format::SpdxJson => SPDX_JSON,
            Format::GrypeJson => GRYPE_JSON,
        }
    }

    /// The format whose artifactType is `artifact_type`.
    pub fn of_artifact_type(artifact_type: Option<&str>) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|f| artifact_type == Some(f.artifact_type()))
    }

    /// Which format a listed referrer claims to hold: by artifactType, else by refcat's
    /// format annotation (some registries list the config media type as artifactType).
    /// A claim only; [`Existing::read`] checks it against the manifest.
    pub fn of(descriptor: &Descriptor) -> Option<Format> {
        Format::of_artifact_type(descriptor.artifact_type.as_deref()).or_else(|| {
            let named = descriptor.annotations.get(FORMAT)?;
            Format::ALL.into_iter().find(|f| f.as_str() == named)
        })
    }
}

/// An artifact in one of refcat's formats, as read back from the registry.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Its descriptor: digest and size as listed, artifactType and annotations from its
    /// manifest (never from the listing, which no signature covers).
    pub descriptor: Descriptor,
    /// Its manifest, read by digest.
    pub manifest: ImageManifest,
}

impl Stored {
    /// The artifact's manifest digest.
    pub fn digest(&self) -> &Digest {
        &self.descriptor.digest
    }

    /// A manifest annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.descriptor.annotations.get(key).map(String::as_str)
    }

    /// Whether the manifest says refcat made it (names its format the way refcat does).
    /// Only a claim: a signature that verifies with the publisher's key proves it.
    pub fn claims_refcat(&self) -> bool {
        let format = Format::of_artifact_type(self.descriptor.artifact_type.as_deref());
        format.is_some_and(|f| self.annotation(FORMAT) == Some(f.as_str()))
    }
}

/// Artifacts in refcat's formats on one platform manifest, newest first within each
/// format.
#[derive(Clone, Debug, Default)]
pub struct Existing {
    /// Syft JSON artifacts.
    pub syft: Vec<Stored>,
    /// SPDX JSON artifacts.
    pub spdx: Vec<Stored>,
    /// Grype artifacts.
    pub grype: Vec<Stored>,
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
}

impl Existing {
    /// The artifacts in refcat's formats on `subject`: every candidate of the referrers
    /// listing whose manifest, read by digest, names `subject` and one of refcat's
    /// artifactTypes. A listed manifest that is gone is left out; it cannot be read.
    pub async fn read(
        client: &Client,
        repository: &RepositoryName,
        subject: &Digest,
    ) -> Result<Existing, RegistryError> {
        Existing::read_with(client, repository, subject, None).await
    }

    /// refcat's own artifacts on `subject`: those of [`Existing::read`] whose signature
    /// verifies with `own`, the publisher's key. Everything else (another tool's SBOM,
    /// a set signed with another key, an unsigned look-alike) is left alone: never
    /// reused, never scanned, never pruned. An artifact `own` proved before is not read
    /// again and its signature is checked again only after [`Trust::recheck_after`], so
    /// a long-running worker's walk mostly costs one referrers call per subject.
    ///
    /// Only `formats` are read. Signatures are checked newest first, and per format
    /// only until one verifies: the newest own artifact is all that reuse, re-scans and
    /// `first_seen` need. With `every_grype` every Grype artifact is checked (pruning
    /// must know all of its own).
    pub async fn owned(
        client: &Client,
        repository: &RepositoryName,
        subject: &Digest,
        own: &Trust,
        formats: &[Format],
        every_grype: bool,
    ) -> Result<Existing, RegistryError> {
        Existing::read_with(client, repository, subject, Some((own, formats)))
            .await?
            .proven(client, repository, own, every_grype)
            .await
    }

    async fn read_with(
        client: &Client,
        repository: &RepositoryName,
        subject: &Digest,
        proved_by: Option<(&Trust, &[Format])>,
    ) -> Result<Existing, RegistryError> {
        let referrers = client.referrers(repository, subject, None).await?;
        let wanted = |f: Format| proved_by.is_none_or(|(_, formats)| formats.contains(&f));
        let candidates = referrers
            .into_iter()
            .filter(|d| Format::of(d).is_some_and(wanted));
        let read: Vec<Option<(Descriptor, ImageManifest)>> = stream::iter(candidates)
            .map(|listed| async move {
                let known = match proved_by {
                    Some((trust, _)) => trust.proven_manifest(repository, &listed.digest).await,
                    None => None,
                };
                if let Some(manifest) = known {
                    return Ok(Some((listed, manifest)));
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
        Ok(Existing::from_manifests(
            subject,
            read.into_iter().flatten(),
        ))
    }

    /// Sorts artifact manifests into formats, keeping those whose `subject` is
    /// `subject`, newest first by their own `created`.
    pub fn from_manifests(
        subject: &Digest,
        read: impl IntoIterator<Item = (Descriptor, ImageManifest)>,
    ) -> Existing {
        let mut existing = Existing::default();
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
            existing.of_format_mut(format).push(Stored {
                descriptor,
                manifest,
            });
        }
        for list in [&mut existing.syft, &mut existing.spdx, &mut existing.grype] {
            // RFC 3339 UTC strings sort by time.
            list.sort_by(|a, b| b.annotation(CREATED).cmp(&a.annotation(CREATED)));
        }
        existing
    }

    /// The artifacts of `format`, newest first.
    pub fn of_format(&self, format: Format) -> &[Stored] {
        match format {
            Format::SyftJson => &self.syft,
            Format::SpdxJson => &self.spdx,
            Format::GrypeJson => &self.grype,
        }
    }

    fn of_format_mut(&mut self, format: Format) -> &mut Vec<Stored> {
        match format {
            Format::SyftJson => &mut self.syft,
            Format::SpdxJson => &mut self.spdx,
            Format::GrypeJson => &mut self.grype,
        }
    }

    /// The newest artifact of each format whose signature verifies with `trust`'s keys
    /// (every such Grype artifact with `every_grype`); `trust` remembers their manifests.
    async fn proven(
        self,
        client: &Client,
        repository: &RepositoryName,
        trust: &Trust,
        every_grype: bool,
    ) -> Result<Existing, RegistryError> {
        let mut proven = Existing::default();
        for format in Format::ALL {
            let wanted = if format == Format::GrypeJson && every_grype {
                usize::MAX
            } else {
                1
            };
            for stored in self.of_format(format) {
                if proven.of_format(format).len() >= wanted {
                    break;
                }
                let verdict = trust.verdict(client, repository, stored.digest()).await?;
                if verdict.as_ref().is_some_and(Verdict::is_verified) {
                    trust
                        .remember_manifest(repository, stored.digest(), &stored.manifest)
                        .await;
                    proven.of_format_mut(format).push(stored.clone());
                } else {
                    tracing::debug!(%repository, artifact = %stored.digest(), ?verdict, "not signed with the publisher's key; not refcat's");
                }
            }
        }
        Ok(proven)
    }

    /// What is missing, given the built time of the Grype DB in use.
    pub fn missing(&self, db_built: &str) -> Missing {
        let current_grype = self.grype.iter().any(|stored| {
            stored
                .annotation(GRYPE_DB_BUILT)
                .is_some_and(|b| !is_older(b, db_built))
        });
        Missing {
            syft: self.syft.is_empty(),
            spdx: self.spdx.is_empty(),
            grype: !current_grype,
        }
    }
}

/// Whether RFC 3339 time `a` is before `b`; unparsable times count as old.
fn is_older(a: &str, b: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;
    match (
        OffsetDateTime::parse(a, &Rfc3339),
        OffsetDateTime::parse(b, &Rfc3339),
    ) {
        (Ok(a), Ok(b)) => a < b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_types::{EMPTY_JSON, OCI_MANIFEST};

    fn subject() -> Digest {
        crate::digest::sha256(b"platform manifest")
    }

    /// A listed referrer and its manifest: `listed` annotations on the descriptor,
    /// `signed` ones in the manifest.
    fn artifact(
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
    fn decides_what_is_missing() {
        let built = [(GRYPE_DB_BUILT, "2026-11-01T00:00:00Z")];
        let existing = Existing::from_manifests(
            &subject(),
            [
                artifact(SYFT_JSON, &subject(), &[], &[]),
                artifact(SPDX_JSON, &subject(), &[], &[]),
                artifact(GRYPE_JSON, &subject(), &[], &built),
            ],
        );
        assert_eq!(existing.missing("2026-11-01T00:00:00Z"), Missing::default());
        assert_eq!(
            existing.missing("2026-11-02T00:00:00Z"),
            Missing {
                grype: true,
                ..Missing::default()
            }
        );
        assert_eq!(
            Existing::default().missing("2026-11-01T00:00:00Z"),
            Missing::ALL
        );
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
        let existing = Existing::from_manifests(
            &subject(),
            [artifact(GRYPE_JSON, &subject(), &forged_listing, &signed)],
        );
        assert_eq!(
            existing.grype[0].annotation(GRYPE_DB_BUILT),
            Some("2026-11-01T00:00:00Z")
        );
        assert!(existing.missing("2026-11-02T00:00:00Z").grype);
    }

    #[test]
    fn a_manifest_for_another_subject_or_type_is_left_out() {
        let other = crate::digest::sha256(b"another image");
        let mut renamed = artifact(SPDX_JSON, &subject(), &[(FORMAT, "spdx-json")], &[]);
        // The listing claims SPDX; the manifest says otherwise.
        renamed.1.artifact_type = Some("application/vnd.other".into());
        let existing = Existing::from_manifests(
            &subject(),
            [
                artifact(GRYPE_JSON, &other, &[], &[]),
                renamed,
                artifact(SYFT_JSON, &subject(), &[], &[]),
            ],
        );
        assert!(existing.grype.is_empty() && existing.spdx.is_empty());
        assert_eq!(existing.syft.len(), 1);
    }
}
