//! What refcat may delete: its own artifact or catalog document, and with it only the
//! manifests that hold nothing but its own signatures of it, all checked against the
//! publisher's key right before the delete. A tag (`sha256-<hex>.sig`, the tag-schema
//! `sha256-<hex>`) or a listing only nominates; anyone with push access can point one at
//! a production image, and refcat's delete rights must not follow it there.

use super::signatures;
use super::{Mode, Origin, Trust, Verified};
use crate::digest::Digest;
use crate::oci::Manifest;
use crate::reference::{RepositoryName, Target};
use crate::registry::{Client, RegistryError};

/// A manifest of refcat's own, with its signature manifests: what may be deleted, or
/// copied whole to another repository; built only by [`Trust::prove_owned`], just
/// before the delete or copy.
#[derive(Debug)]
pub struct Owned {
    origin: Origin,
    signatures: Vec<Digest>,
    /// The one of `signatures` that cosign's `.sig` tag holds, if any.
    legacy: Option<Digest>,
    listing: Option<Digest>,
}

impl Owned {
    /// refcat's artifact or document: where it is, and the manifest it is about.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The manifests that hold only refcat's signatures of it.
    pub fn signatures(&self) -> &[Digest] {
        &self.signatures
    }

    /// Whether `signature` is the manifest under cosign's `.sig` tag (not a referrer).
    pub fn is_legacy(&self, signature: &Digest) -> bool {
        self.legacy.as_ref() == Some(signature)
    }

    /// Its tag-schema referrers index, when it lists nothing but those signatures.
    pub fn listing(&self) -> Option<&Digest> {
        self.listing.as_ref()
    }
}

impl Trust {
    /// Checks again, asking the registry and not what this trust remembers, that
    /// `verified`'s artifact is signed with these keys, and gathers its signature
    /// manifests; `None` when it no longer verifies. For the unverified mode, always
    /// `None`: nothing unchecked is ever deleted.
    pub async fn prove_owned<T>(
        &self,
        client: &Client,
        verified: &Verified<T>,
    ) -> Result<Option<Owned>, RegistryError> {
        let Mode::Checked { keys, .. } = &self.mode else {
            return Ok(None);
        };
        let proof = verified.proof();
        let (repository, artifact) = (proof.repository(), proof.artifact());
        let key = format!("{repository}@{artifact}");
        self.verdicts.forget(&key).await;
        let before = self.verdicts.prover(&key).await;
        let checked =
            signatures::check(client, repository, artifact, keys, true, before.as_ref()).await?;
        if !checked.verdict.is_verified() {
            tracing::warn!(%repository, %artifact, verdict = ?checked.verdict,
                "no longer verifies with the publisher's key; not deleted");
            return Ok(None);
        }
        let legacy = checked
            .proving
            .iter()
            .find(|s| s.format == "legacy")
            .map(|s| s.digest.clone());
        let signatures: Vec<Digest> = checked.proving.into_iter().map(|s| s.digest).collect();
        let listing = own_listing(client, repository, artifact, &signatures).await?;
        Ok(Some(Owned {
            origin: proof.origin().clone(),
            signatures,
            legacy,
            listing,
        }))
    }
}

/// The tag-schema index of `artifact` (registries without the referrers API keep its
/// signatures there), when it is an index that lists only `signatures`.
async fn own_listing(
    client: &Client,
    repository: &RepositoryName,
    artifact: &Digest,
    signatures: &[Digest],
) -> Result<Option<Digest>, RegistryError> {
    if client.referrers_api_known(repository) == Some(true) {
        return Ok(None);
    }
    let Ok(tag) = crate::tag_schema::referrers_tag(artifact) else {
        return Ok(None);
    };
    let fetched = match client.get_manifest(repository, &Target::Tag(tag)).await {
        Ok(fetched) => fetched,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    match &fetched.manifest {
        Manifest::Index(index)
            if !index.manifests.is_empty()
                && index
                    .manifests
                    .iter()
                    .all(|d| signatures.contains(&d.digest)) =>
        {
            Ok(Some(fetched.digest))
        }
        _ => {
            tracing::warn!(%repository, %artifact, "its tag-schema tag points at more than its own signatures; never deleted with it");
            Ok(None)
        }
    }
}
