//! Promotion reuse: an image copied to another repository (`oras copy dev/app:1
//! prod/app:1`) has the same platform manifests, and refcat may already hold a complete
//! set for them. Before scanning, the subject index names where; a set there that still
//! verifies with the publisher's key is copied byte for byte, signatures and all, so
//! `cosign verify` passes in the new repository with no new signature. A Grype result
//! made with an older DB than the current one stays behind, and grype runs on the copied
//! Syft JSON.

use std::collections::BTreeMap;

use futures_util::future::try_join_all;

use super::existing::{Existing, Missing};
use super::pipeline::Publisher;
use super::report::Published;
use super::PublishError;
use crate::artifact::Format;
use crate::catalog::platforms::PlatformManifest;
use crate::catalog::subjects::SubjectIndex;
use crate::locks::Held;
use crate::reference::{Reference, RepositoryName, Target};
use crate::registry::{RegistryError, SubjectState, Unlisted};
use crate::sign::legacy;
use crate::trust::{Candidate, Verified, MAX_LAYER_BYTES};

/// The largest blob a copied signature manifest may name: a Sigstore bundle or a
/// `.sig` payload is a few KiB.
const MAX_SIGNATURE_BLOB_BYTES: u64 = 1024 * 1024;

/// What was copied for one platform manifest, and from where.
#[derive(Clone, Debug)]
pub(super) struct Reused {
    /// The repository it came from.
    pub from: RepositoryName,
    /// The artifacts copied.
    pub artifacts: Vec<Published>,
}

impl Publisher {
    /// Copies, for every subject of `plan` that lacks something, a set from another
    /// repository where the subject index names one, under `held`. `None` when no copy
    /// was tried; else what was copied, by subject digest (the plan must be checked
    /// again: a copy that failed halfway may have written part of a set).
    pub(super) async fn reuse_where_lacking(
        &self,
        reference: &Reference,
        plan: &[(PlatformManifest, Existing, Missing)],
        held: &[Held],
    ) -> Result<Option<BTreeMap<String, Reused>>, PublishError> {
        let lacking = plan.iter().filter(|(_, _, m)| m.any());
        if self.options.force || lacking.clone().next().is_none() {
            return Ok(None);
        }
        let Some(index) = self.subject_index().await else {
            return Ok(None);
        };
        let tried = lacking.clone().any(|(subject, _, _)| {
            !index
                .get()
                .holders(&subject.descriptor.digest, &reference.repository)
                .is_empty()
        });
        if !tried {
            return Ok(None);
        }
        let db_built = self.grype_db().await?.built;
        for lock in held {
            lock.check()?;
        }
        let (index, db_built) = (&index, &db_built);
        let copies = try_join_all(lacking.map(|(subject, _, missing)| async move {
            let copied = self
                .reuse(index.get(), reference, subject, *missing, db_built)
                .await?;
            Ok::<_, PublishError>(copied.map(|c| (subject.descriptor.digest.to_string(), c)))
        }))
        .await?;
        Ok(Some(copies.into_iter().flatten().collect()))
    }

    /// The subject index, when reuse is on and one is stored that verifies with the
    /// publisher's key; read once per publish, and only when something is missing.
    pub(super) async fn subject_index(&self) -> Option<Verified<SubjectIndex>> {
        let repository = self.options.reuse_from.as_ref()?;
        match SubjectIndex::stored(&self.client, repository, self.own_trust()).await {
            Ok(stored) => stored.and_then(|s| s.document.verified()),
            Err(e) => {
                tracing::warn!(%repository, error = %e, "the subject index cannot be read; scanning instead of reusing");
                None
            }
        }
    }

    /// Copies what `subject` lacks in `reference`'s repository from the first repository
    /// the index names that holds refcat's own, verified set for the same digest; `None`
    /// when none does (the caller scans). A holder that cannot be read or copied from is
    /// passed over: reuse only ever saves work, it never fails a job.
    async fn reuse(
        &self,
        index: &SubjectIndex,
        reference: &Reference,
        subject: &PlatformManifest,
        missing: Missing,
        db_built: &str,
    ) -> Result<Option<Reused>, PublishError> {
        let digest = &subject.descriptor.digest;
        for holder in index.holders(digest, &reference.repository) {
            let theirs = match Existing::owned(
                &self.client,
                &holder,
                digest,
                self.own_trust(),
                &Format::ALL,
                false,
            )
            .await
            {
                Ok(theirs) => theirs,
                Err(e) => {
                    tracing::warn!(%holder, %digest, error = %e, "a repository the subject index names cannot be read; not reused from");
                    continue;
                }
            };
            let lacks = theirs.missing(db_built);
            // Every SBOM the target lacks must be there; a stale Grype result is not copied.
            if (missing.syft && lacks.syft) || (missing.spdx && lacks.spdx) {
                continue;
            }
            let mut copy: Vec<(Format, &Verified<Candidate>)> = Vec::new();
            for (format, wanted) in [
                (Format::SyftJson, missing.syft),
                (Format::SpdxJson, missing.spdx),
                (Format::GrypeJson, missing.grype && !lacks.grype),
            ] {
                if let Some(newest) = theirs.of_format(format).first().filter(|_| wanted) {
                    copy.push((format, newest));
                }
            }
            if copy.is_empty() {
                continue;
            }
            match self.copy_set(&holder, &reference.repository, &copy).await {
                Ok(Some(artifacts)) => {
                    tracing::info!(from = %holder, to = %reference.repository, %digest,
                        copied = artifacts.len(), "reused refcat's set from another repository instead of scanning");
                    return Ok(Some(Reused {
                        from: holder,
                        artifacts,
                    }));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(from = %holder, %digest, error = %e, "copying the set failed; trying elsewhere, else scanning")
                }
            }
        }
        Ok(None)
    }

    /// Copies each artifact of `copy` from `from` to `to` with a signature manifest that
    /// proves it the publisher's, the signature first and the artifact manifest last (as
    /// a publish commits), then lists them where the registry does not; `None` when one
    /// no longer proves to be the publisher's own. Blobs are bounded: a look-alike
    /// signature manifest that names a huge blob is refused, not copied.
    async fn copy_set(
        &self,
        from: &RepositoryName,
        to: &RepositoryName,
        copy: &[(Format, &Verified<Candidate>)],
    ) -> Result<Option<Vec<Published>>, RegistryError> {
        let client = &self.client;
        // Each artifact is proven, then copied, independently of the others: their round
        // trips overlap.
        let proofs = try_join_all(copy.iter().map(|(format, artifact)| async move {
            let owned = self.own_trust().prove_owned(client, *artifact).await?;
            Ok::<_, RegistryError>(
                owned
                    .filter(|o| !o.signatures().is_empty())
                    .map(|o| (*format, o)),
            )
        }))
        .await?;
        let Some(proven) = proofs.into_iter().collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        let copies = try_join_all(proven.iter().map(|(format, owned)| async move {
            let artifact = owned.origin().artifact();
            // One signature is all a verifier needs; the first that proved it is copied.
            let signature = owned
                .signatures()
                .first()
                .expect("only proofs with a signature are kept");
            let target = if owned.is_legacy(signature) {
                let tag =
                    legacy::signature_tag(artifact).map_err(|source| RegistryError::Digest {
                        what: format!("the .sig tag of {to}@{artifact}"),
                        source,
                    })?;
                Target::Tag(tag)
            } else {
                Target::Digest(signature.clone())
            };
            let unlisted = client
                .copy_manifest(from, to, signature, &target, MAX_SIGNATURE_BLOB_BYTES)
                .await?;
            // The signatures are listed before the artifact they sign shows.
            client.list(to, unlisted, SubjectState::Existing).await?;
            let target = Target::Digest(artifact.clone());
            let listed_last = client
                .copy_manifest(from, to, artifact, &target, MAX_LAYER_BYTES)
                .await?;
            let published = Published {
                format: *format,
                digest: artifact.clone(),
            };
            Ok::<_, RegistryError>((published, listed_last))
        }))
        .await?;
        let mut listed_last = Unlisted::default();
        let mut published = Vec::with_capacity(copies.len());
        for (artifact, unlisted) in copies {
            published.push(artifact);
            listed_last.extend(unlisted);
        }
        // One read-modify-write of the subject's tag-schema index for the whole set.
        client.list(to, listed_last, SubjectState::Existing).await?;
        Ok(Some(published))
    }
}
