//! Copying a manifest across repositories of one registry, byte for byte: its blobs by
//! cross-repository mount (a pull and push where the registry will not mount), then the
//! manifest itself, so its digest, and any signature over it, stay the same.

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};

use super::client::Client;
use super::counter::RequestKind;
use super::error::RegistryError;
use super::referrers::Unlisted;
use super::transport::{push_scope, Request};
use crate::digest::Digest;
use crate::oci::{Descriptor, Manifest};
use crate::reference::{RepositoryName, Target};

impl Client {
    /// Copies image manifest `digest` and the blobs it names from `from` to `to`, under
    /// `target` in `to` (its digest, or a tag). An index is refused: an artifact or
    /// signature is one manifest; so is one that names a blob larger than
    /// `max_blob_bytes`, before anything is copied. What the registry did not list under
    /// the manifest's `subject` is returned for [`Client::list`].
    pub async fn copy_manifest(
        &self,
        from: &RepositoryName,
        to: &RepositoryName,
        digest: &Digest,
        target: &Target,
        max_blob_bytes: u64,
    ) -> Result<Unlisted, RegistryError> {
        let fetched = self
            .get_manifest(from, &Target::Digest(digest.clone()))
            .await?;
        let Manifest::Image(manifest) = &fetched.manifest else {
            return Err(RegistryError::InvalidResponse {
                what: format!("copy {from}@{digest}"),
                reason: "an index, where one manifest was expected".into(),
            });
        };
        let blobs = std::iter::once(&manifest.config).chain(&manifest.layers);
        if blobs.clone().any(|b| b.size > max_blob_bytes) {
            return Err(RegistryError::TooLarge {
                what: format!("copy {from}@{digest}: a blob it names"),
                limit: max_blob_bytes,
            });
        }
        futures_util::future::try_join_all(blobs.map(|blob| self.copy_blob(from, to, blob)))
            .await?;
        let pushed = self
            .put_manifest(to, target, &fetched.media_type, fetched.bytes.clone())
            .await?;
        let mut unlisted = Unlisted::default();
        if let (Some(subject), false) = (&manifest.subject, pushed.subject_acknowledged) {
            let referrer = Descriptor {
                artifact_type: manifest
                    .artifact_type
                    .clone()
                    .or_else(|| Some(manifest.config.media_type.clone())),
                annotations: manifest.annotations.clone(),
                ..fetched.descriptor()
            };
            unlisted.add(subject.digest.clone(), referrer);
        }
        Ok(unlisted)
    }

    /// Makes blob `blob` of `from` a blob of `to`: one mount request where the registry
    /// mounts it (201); else its upload session is given up and the blob pulled (checked
    /// against its digest and size) and pushed.
    async fn copy_blob(
        &self,
        from: &RepositoryName,
        to: &RepositoryName,
        blob: &Descriptor,
    ) -> Result<(), RegistryError> {
        let digest = &blob.digest;
        if self.knows_blob(to, digest) {
            return Ok(());
        }
        let what = format!("mount blob {to}@{digest} from {from}");
        let mount = Request::new(
            Method::POST,
            RequestKind::Upload,
            format!("/v2/{to}/blobs/uploads/?mount={digest}&from={from}"),
            // Pull on the source and push on the target, in one token.
            format!("{} repository:{from}:pull", push_scope(to.as_str())),
            what.clone(),
        );
        let response = self.send(mount).await?;
        match response.status() {
            StatusCode::CREATED => {
                self.remember_blob(to, digest);
                return Ok(());
            }
            StatusCode::ACCEPTED => {
                // A session the registry opened instead of mounting: close it rather
                // than leave it for the registry's cleanup.
                if let Some(location) = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                {
                    let cancel = Request::new(
                        Method::DELETE,
                        RequestKind::Upload,
                        super::blobs::session_path(location),
                        push_scope(to.as_str()),
                        format!("cancel the upload of {to}@{digest}"),
                    );
                    if let Err(e) = self.send(cancel).await {
                        tracing::debug!(error = %e, "an unused upload session was not cancelled");
                    }
                }
            }
            _ => return Err(self.unexpected(response, what).await),
        }
        tracing::debug!(%from, %to, %digest, "the registry did not mount the blob; copying it");
        let data = self.get_blob(from, digest, Some(blob.size)).await?;
        self.push_blob(to, digest, data).await
    }
}
