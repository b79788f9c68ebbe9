//! Attach, Sign, Commit: pushing built artifacts so that a reader never sees one
//! unsigned or incomplete. Blobs go first, then each signature, then the artifact
//! manifest that makes it visible.

use std::time::Instant;

use bytes::Bytes;
use futures_util::future::try_join_all;

use super::pipeline::Publisher;
use super::report::{Published, SubjectReport};
use super::signable::Signable;
use super::{PublishError, SignatureFormat, Step};
use crate::artifact::{now_rfc3339, BuiltArtifact};
use crate::digest::Digest;
use crate::locks::Held;
use crate::media_types::OCI_MANIFEST;
use crate::oci::Descriptor;
use crate::reference::{Reference, RepositoryName, Tag, Target};
use crate::registry::{RegistryError, SubjectState, Unlisted};
use crate::sign::{bundle, legacy};
use crate::trust::Verified;

/// A signature ready to push.
enum Signature {
    /// A Sigstore bundle referrer of the signed artifact.
    Bundle(Box<BuiltArtifact>),
    /// A legacy `.sig` manifest and its blobs.
    Legacy {
        signed: Digest,
        manifest: Bytes,
        blobs: Vec<(Digest, Bytes)>,
    },
}

impl Publisher {
    /// Attach, Sign, Commit for a set of artifacts of one platform manifest, published
    /// under `held`.
    pub(super) async fn commit(
        &self,
        reference: &Reference,
        built: &[Signable],
        report: &mut SubjectReport,
        held: &[Held],
    ) -> Result<(), PublishError> {
        let unlisted = self.commit_unlisted(reference, built, report, held).await?;
        self.list(reference, unlisted).await
    }

    /// [`Publisher::commit`], leaving what the registry did not list by itself for
    /// [`Publisher::list`]: a registry without the referrers API shows it only then.
    pub(super) async fn commit_unlisted(
        &self,
        reference: &Reference,
        built: &[Signable],
        report: &mut SubjectReport,
        held: &[Held],
    ) -> Result<Unlisted, PublishError> {
        self.attach_and_sign(&reference.repository, built).await?;
        // Until now nothing was visible; if another replica may be publishing the same
        // subject now, its set and this one must not both show.
        for lock in held {
            lock.check()?;
        }
        let artifacts: Vec<BuiltArtifact> = built.iter().map(|s| s.artifact().clone()).collect();
        let started = Instant::now();
        // Commit: the artifact manifests, which makes them visible.
        let unlisted = self
            .client
            .push_unlisted(&reference.repository, &artifacts)
            .await?;
        report.published.extend(built.iter().filter_map(|signable| {
            Some(Published {
                format: signable.format()?,
                digest: signable.digest().clone(),
            })
        }));
        self.reached(Step::Commit, started);
        Ok(unlisted)
    }

    /// Adds committed artifacts to their subject's tag-schema index.
    pub(super) async fn list(
        &self,
        reference: &Reference,
        unlisted: Unlisted,
    ) -> Result<(), PublishError> {
        self.client
            .list(&reference.repository, unlisted, SubjectState::Existing)
            .await?;
        Ok(())
    }

    /// Stores `artifact` (one without a subject) under `tag` in `repository`, signed,
    /// replacing `previous`, what the tag held, read verified with this publisher's key:
    /// the old manifest and its signatures are deleted once the tag has moved (where the
    /// registry allows, and only when they still prove to be this publisher's own).
    pub async fn replace_tagged<T>(
        &self,
        repository: &RepositoryName,
        tag: Tag,
        document: Signable,
        previous: Option<&Verified<T>>,
    ) -> Result<(), PublishError> {
        self.attach_and_sign(repository, std::slice::from_ref(&document))
            .await?;
        self.client
            .put_manifest(
                repository,
                &Target::Tag(tag),
                &document.artifact().descriptor.media_type,
                document.artifact().manifest.clone(),
            )
            .await?;
        if let Some(previous) = previous.filter(|p| p.proof().artifact() != document.digest()) {
            super::prune::replaced(&self.client, self.own_trust(), previous).await?;
        }
        Ok(())
    }

    /// Attach and Sign: every blob, the signatures' too, in one wave; then the
    /// signatures, before the manifests they sign.
    async fn attach_and_sign(
        &self,
        repository: &RepositoryName,
        artifacts: &[Signable],
    ) -> Result<(), PublishError> {
        let started = Instant::now();
        let signatures: Vec<Signature> = artifacts
            .iter()
            .map(|artifact| self.signature(repository, artifact))
            .collect();
        let mut with_blobs: Vec<BuiltArtifact> =
            artifacts.iter().map(|s| s.artifact().clone()).collect();
        let mut loose = Vec::new();
        for signature in &signatures {
            match signature {
                Signature::Bundle(artifact) => with_blobs.push(artifact.as_ref().clone()),
                Signature::Legacy { blobs, .. } => loose.extend(blobs.iter().cloned()),
            }
        }
        let loose_uploads = loose.into_iter().map(|(digest, data)| async move {
            self.client.push_blob(repository, &digest, data).await
        });
        tokio::try_join!(
            self.client.push_artifact_blobs(repository, &with_blobs),
            try_join_all(loose_uploads),
        )?;
        self.reached(Step::Attach, started);
        let started = Instant::now();
        // Sign: the signature manifests, before the manifests they sign.
        try_join_all(signatures.iter().map(|signature| async move {
            match signature {
                // The signed artifact was just made: nothing else can refer to it yet.
                Signature::Bundle(artifact) => {
                    self.client
                        .push_artifact_manifests(
                            repository,
                            std::slice::from_ref(artifact.as_ref()),
                            SubjectState::New,
                        )
                        .await
                }
                Signature::Legacy {
                    signed, manifest, ..
                } => {
                    let tag =
                        legacy::signature_tag(signed).map_err(|source| RegistryError::Digest {
                            what: format!("the .sig tag of {repository}@{signed}"),
                            source,
                        })?;
                    // cosign appends a layer to an existing `.sig` manifest; this one is
                    // put whole. The signed artifact was made just now, its `created` to
                    // the nanosecond, so no `.sig` tag for its digest can exist yet (nor
                    // could anyone have made one ahead: the digest was unknown). A rerun
                    // of a crashed job makes a new artifact, with a new digest and tag.
                    self.client
                        .put_manifest(
                            repository,
                            &Target::Tag(tag),
                            OCI_MANIFEST,
                            manifest.clone(),
                        )
                        .await
                        .map(|_| ())
                }
            }
        }))
        .await?;
        self.reached(Step::Sign, started);
        Ok(())
    }

    /// The signature of `signable` in the configured layout: the only place the
    /// publisher's key signs, and it signs only a [`Signable`].
    fn signature(&self, repository: &RepositoryName, signable: &Signable) -> Signature {
        let artifact = signable.artifact();
        match self.options.signature_format {
            SignatureFormat::Bundle => {
                let signed = Descriptor::new(
                    artifact.descriptor.media_type.clone(),
                    artifact.digest.clone(),
                    artifact.manifest.len() as u64,
                );
                Signature::Bundle(Box::new(bundle::artifact(
                    &self.key,
                    &signed,
                    &now_rfc3339(),
                )))
            }
            SignatureFormat::Legacy => {
                let docker_reference = format!("{}/{repository}", self.client.registry());
                let (layer, payload) =
                    legacy::layer(&self.key, &docker_reference, &artifact.digest);
                let (manifest, config) = legacy::manifest(std::slice::from_ref(&layer));
                let blobs = [payload, config]
                    .into_iter()
                    .map(|blob| (crate::digest::sha256(&blob), blob))
                    .collect();
                Signature::Legacy {
                    signed: artifact.digest.clone(),
                    manifest,
                    blobs,
                }
            }
        }
    }
}
