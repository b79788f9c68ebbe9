//! Referrers: the OCI 1.1 referrers API, and the `sha256-<hex>` tag schema for
//! registries without it (read and write).
//!
//! Fallback follows the spec and oras: a 404 that is not `NAME_UNKNOWN`, or a 200 that
//! is not an image index, means the registry lacks the API. The answer is remembered
//! per repository so that each later lookup costs one request.

use reqwest::header::{ACCEPT, LINK};
use reqwest::Method;

use super::client::Client;
use super::counter::RequestKind;
use super::error::RegistryError;
use super::listing::next_link;
use super::transport::{error_codes, pull_scope, read_error_body, Request};
use crate::artifact::media_types::{self, OCI_INDEX};
use crate::artifact::BuiltArtifact;
use crate::digest::{self, Digest};
use crate::oci::{Descriptor, ImageIndex, Manifest};
use crate::reference::{RepositoryName, Target};

const MAX_INDEX_BYTES: u64 = 4 * 1024 * 1024;

impl Client {
    /// The referrers of `subject`, optionally only those of `artifact_type`.
    pub async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let known = self
            .inner
            .referrers_api
            .lock()
            .expect("referrers lock")
            .get(repository.as_str())
            .copied();
        let mut found = match known {
            Some(false) => self.referrers_from_tag_schema(repository, subject).await?,
            _ => match self
                .referrers_from_api(repository, subject, artifact_type)
                .await?
            {
                Some(list) => list,
                None => self.referrers_from_tag_schema(repository, subject).await?,
            },
        };
        if let Some(t) = artifact_type {
            found.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(found)
    }

    /// Whether the registry serves the referrers API for `repository`, if already known.
    pub fn referrers_api_known(&self, repository: &RepositoryName) -> Option<bool> {
        self.inner
            .referrers_api
            .lock()
            .expect("referrers lock")
            .get(repository.as_str())
            .copied()
    }

    /// `None` when the registry lacks the API.
    async fn referrers_from_api(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let what = format!("GET referrers {repository}@{subject}");
        let mut next = Some(match artifact_type {
            Some(t) => format!(
                "/v2/{repository}/referrers/{subject}?artifactType={}",
                url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()
            ),
            None => format!("/v2/{repository}/referrers/{subject}"),
        });
        let mut out = Vec::new();
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let req = Request::new(
                Method::GET,
                RequestKind::Referrers,
                url,
                pull_scope(repository.as_str()),
                what.clone(),
            )
            .header(ACCEPT, OCI_INDEX);
            let response = self.send(req).await?;
            let status = response.status();
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            if status == reqwest::StatusCode::NOT_FOUND {
                let body = read_error_body(response, 8 * 1024).await;
                if error_codes(&body).iter().any(|c| c == "NAME_UNKNOWN") {
                    return Err(RegistryError::NotFound {
                        what,
                        code: "NAME_UNKNOWN".into(),
                    });
                }
                self.remember_api(repository, false);
                return Ok(None);
            }
            if !status.is_success() {
                return Err(self.unexpected(response, what).await);
            }
            if !content_type.starts_with(OCI_INDEX) {
                self.remember_api(repository, false);
                return Ok(None);
            }
            self.remember_api(repository, true);
            next = response
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .filter(|_| pages < 1000);
            let body = self.read_body(response, MAX_INDEX_BYTES, &what).await?;
            let index: ImageIndex =
                serde_json::from_slice(&body).map_err(|e| RegistryError::InvalidResponse {
                    what: what.clone(),
                    reason: e.to_string(),
                })?;
            out.extend(index.manifests);
        }
        Ok(Some(out))
    }

    async fn referrers_from_tag_schema(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        Ok(self
            .tag_schema_index(repository, subject)
            .await?
            .map(|i| i.manifests)
            .unwrap_or_default())
    }

    async fn tag_schema_index(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
    ) -> Result<Option<ImageIndex>, RegistryError> {
        let tag = digest::referrers_tag(subject)
            .parse()
            .expect("sha256-<hex> is a valid tag");
        match self.get_manifest(repository, &Target::Tag(tag)).await {
            Ok(fetched) => match fetched.manifest {
                Manifest::Index(index) => Ok(Some(index)),
                Manifest::Image(_) => Err(RegistryError::InvalidResponse {
                    what: format!("referrers tag of {repository}@{subject}"),
                    reason: "the sha256-<hex> tag holds a manifest, not an index".into(),
                }),
            },
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn remember_api(&self, repository: &RepositoryName, supported: bool) {
        self.inner
            .referrers_api
            .lock()
            .expect("referrers lock")
            .insert(repository.to_string(), supported);
    }

    /// Pushes an artifact: every blob first (skipping those present), then the manifest
    /// by digest. When the registry does not acknowledge the `subject` with
    /// `OCI-Subject`, the subject's tag-schema index is updated too.
    pub async fn push_artifact(
        &self,
        repository: &RepositoryName,
        artifact: &BuiltArtifact,
    ) -> Result<(), RegistryError> {
        for (digest, data) in &artifact.blobs {
            self.push_blob_if_missing(repository, digest, data).await?;
        }
        self.push_artifact_manifest(repository, artifact).await
    }

    /// Pushes an artifact's manifest, whose blobs are already in the repository, and
    /// updates the subject's tag-schema index when the registry does not acknowledge
    /// the `subject` with `OCI-Subject`.
    pub async fn push_artifact_manifest(
        &self,
        repository: &RepositoryName,
        artifact: &BuiltArtifact,
    ) -> Result<(), RegistryError> {
        let pushed = self
            .put_manifest(
                repository,
                &Target::Digest(artifact.digest.clone()),
                media_types::OCI_MANIFEST,
                artifact.manifest.clone(),
            )
            .await?;
        if let (Some(subject), false) = (&artifact.subject, pushed.subject_acknowledged) {
            self.add_to_tag_schema(repository, &subject.digest, artifact.descriptor.clone())
                .await?;
        }
        Ok(())
    }

    /// Adds `referrer` to the tag-schema index of `subject` (read-modify-write,
    /// serialised per subject within this process).
    pub async fn add_to_tag_schema(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        referrer: Descriptor,
    ) -> Result<(), RegistryError> {
        let key = format!("{repository}@{subject}");
        let lock = self
            .inner
            .subject_locks
            .lock()
            .expect("subject locks")
            .entry(key)
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        let mut index = self
            .tag_schema_index(repository, subject)
            .await?
            .unwrap_or_else(ImageIndex::empty);
        if index.manifests.iter().any(|d| d.digest == referrer.digest) {
            return Ok(());
        }
        index.media_type = Some(OCI_INDEX.to_string());
        index.manifests.push(referrer);
        let bytes = serde_json::to_vec(&index).expect("indexes serialize");
        let tag = digest::referrers_tag(subject)
            .parse()
            .expect("sha256-<hex> is a valid tag");
        self.put_manifest(repository, &Target::Tag(tag), OCI_INDEX, bytes.into())
            .await?;
        Ok(())
    }
}
