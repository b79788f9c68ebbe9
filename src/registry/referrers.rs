//! Referrers: the OCI 1.1 referrers API, and the `sha256-<hex>` tag schema for
//! registries without it (read and write).
//!
//! Fallback follows the spec and oras: a 404 that is not `NAME_UNKNOWN`, or a 200 that
//! is not an image index, means the registry lacks the API. The answer is remembered
//! per repository so that each later lookup costs one request.

use std::collections::BTreeMap;

use reqwest::header::{ACCEPT, LINK};
use reqwest::Method;

use super::client::Client;
use super::counter::RequestKind;
use super::error::RegistryError;
use super::listing::next_link;
use super::transport::{error_codes, pull_scope, read_error_body, Request};
use crate::artifact::BuiltArtifact;
use crate::cache::coalesced;
use crate::digest::Digest;
use crate::media_types::{self, OCI_INDEX};
use crate::oci::{Descriptor, ImageIndex, Manifest};
use crate::reference::{RepositoryName, Tag, Target};

const MAX_INDEX_BYTES: u64 = 4 * 1024 * 1024;

/// Referrers pushed to a registry without the referrers API and not yet added to
/// their subjects' tag-schema indexes, by subject.
#[derive(Debug, Default)]
#[must_use = "unlisted referrers are invisible on registries without the referrers API"]
pub struct Unlisted(BTreeMap<String, (Digest, Vec<Descriptor>)>);

impl Unlisted {
    /// Adds `referrer` of `subject`.
    pub(super) fn add(&mut self, subject: Digest, referrer: Descriptor) {
        self.0
            .entry(subject.to_string())
            .or_insert_with(|| (subject, Vec::new()))
            .1
            .push(referrer);
    }

    /// Adds `other`'s referrers.
    pub fn extend(&mut self, other: Unlisted) {
        for (key, (subject, referrers)) in other.0 {
            self.0
                .entry(key)
                .or_insert_with(|| (subject, Vec::new()))
                .1
                .extend(referrers);
        }
    }
}

impl Client {
    /// The referrers of `subject`, optionally only those of `artifact_type`. A client with
    /// a cache keeps each subject's whole list and filters it itself.
    pub async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let Some(cache) = &self.inner.cache else {
            return self
                .fetch_referrers(repository, subject, artifact_type)
                .await;
        };
        let fetch = async {
            let all = self.fetch_referrers(repository, subject, None).await?;
            Ok(std::sync::Arc::new(all))
        };
        let key = cache.named(format!("{repository}@{subject}"));
        let all = coalesced(&cache.referrers, key, fetch).await?;
        Ok(all
            .iter()
            .filter(|d| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)))
            .cloned()
            .collect())
    }

    async fn fetch_referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let mut known = self.referrers_api_known(repository);
        // Until the first answer says whether the API exists, one caller per repository
        // asks; the others wait for its answer instead of probing too.
        let probe = match known {
            Some(_) => None,
            None => {
                let guard = self
                    .inner
                    .subject_locks
                    .lock(format!("probe:{repository}"))
                    .await;
                known = self.referrers_api_known(repository);
                Some(guard)
            }
        };
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
        drop(probe);
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
        let tag = referrers_tag(repository, subject)?;
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

    /// Pushes an artifact: its blobs first, then its manifest by digest, then (when the
    /// registry does not acknowledge the `subject`) the subject's tag-schema index.
    pub async fn push_artifact(
        &self,
        repository: &RepositoryName,
        artifact: &BuiltArtifact,
    ) -> Result<(), RegistryError> {
        let artifacts = std::slice::from_ref(artifact);
        self.push_artifact_blobs(repository, artifacts).await?;
        self.push_artifact_manifests(
            repository,
            std::slice::from_ref(artifact),
            SubjectState::Existing,
        )
        .await
    }

    /// Pushes the blobs of `artifacts`, each distinct blob once. The config is shared by
    /// every artifact and is sent only when missing; the layers are new content,
    /// uploaded without asking first.
    pub async fn push_artifact_blobs(
        &self,
        repository: &RepositoryName,
        artifacts: &[BuiltArtifact],
    ) -> Result<(), RegistryError> {
        let mut distinct: BTreeMap<String, (&Digest, &bytes::Bytes)> = BTreeMap::new();
        for (digest, data) in artifacts.iter().flat_map(|a| &a.blobs) {
            distinct.entry(digest.to_string()).or_insert((digest, data));
        }
        let uploads = distinct.into_values().map(|(digest, data)| async move {
            if data.as_ref() == media_types::EMPTY_JSON_BYTES {
                self.push_blob_if_missing(repository, digest, data).await
            } else {
                self.push_blob(repository, digest, data.clone()).await
            }
        });
        futures_util::future::try_join_all(uploads).await?;
        Ok(())
    }

    /// Pushes artifact manifests whose blobs are in the repository, then adds those the
    /// registry did not acknowledge with `OCI-Subject` to their subjects' tag-schema
    /// indexes, one read-modify-write per subject.
    pub async fn push_artifact_manifests(
        &self,
        repository: &RepositoryName,
        artifacts: &[BuiltArtifact],
        subject_state: SubjectState,
    ) -> Result<(), RegistryError> {
        let unlisted = self.push_unlisted(repository, artifacts).await?;
        self.list(repository, unlisted, subject_state).await
    }

    /// Pushes artifact manifests whose blobs are in the repository, and returns those
    /// the registry did not acknowledge with `OCI-Subject`: on a registry without the
    /// referrers API they stay unlisted until [`Client::list`] adds them, so a caller
    /// committing several sets for one subject pays one read-modify-write for all.
    pub async fn push_unlisted(
        &self,
        repository: &RepositoryName,
        artifacts: &[BuiltArtifact],
    ) -> Result<Unlisted, RegistryError> {
        let pushes = artifacts.iter().map(|artifact| async move {
            let target = Target::Digest(artifact.digest.clone());
            let put = || {
                self.put_manifest(
                    repository,
                    &target,
                    media_types::OCI_MANIFEST,
                    artifact.manifest.clone(),
                )
            };
            let pushed = match put().await {
                // A blob this client remembered was removed since (a registry GC):
                // forget it, push the artifact's blobs again, and try once more.
                Err(e) if e.has_code("MANIFEST_BLOB_UNKNOWN") || e.has_code("BLOB_UNKNOWN") => {
                    tracing::warn!(%repository, artifact = %artifact.digest, error = %e, "the registry lost a blob; pushing the artifact's blobs again");
                    for (digest, _) in &artifact.blobs {
                        self.forget_blob(repository, digest);
                    }
                    self.push_artifact_blobs(repository, std::slice::from_ref(artifact))
                        .await?;
                    put().await?
                }
                other => other?,
            };
            Ok::<_, RegistryError>((artifact, pushed.subject_acknowledged))
        });
        let mut unlisted = Unlisted::default();
        for (artifact, acknowledged) in futures_util::future::try_join_all(pushes).await? {
            if let (Some(subject), false) = (&artifact.subject, acknowledged) {
                unlisted.add(subject.digest.clone(), artifact.descriptor.clone());
            }
        }
        Ok(unlisted)
    }

    /// Adds what [`Client::push_unlisted`] left unlisted to the subjects' tag-schema
    /// indexes, one read-modify-write per subject.
    pub async fn list(
        &self,
        repository: &RepositoryName,
        unlisted: Unlisted,
        subject_state: SubjectState,
    ) -> Result<(), RegistryError> {
        for (subject, referrers) in unlisted.0.into_values() {
            self.add_to_tag_schema(repository, &subject, referrers, subject_state)
                .await?;
        }
        Ok(())
    }

    /// Adds `referrers` to the tag-schema index of `subject` (a new subject's index is
    /// written without reading it).
    pub async fn add_to_tag_schema(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        referrers: Vec<Descriptor>,
        subject_state: SubjectState,
    ) -> Result<(), RegistryError> {
        self.edit_tag_schema(repository, subject, subject_state, |manifests| {
            for referrer in referrers {
                if !manifests.iter().any(|d| d.digest == referrer.digest) {
                    manifests.push(referrer);
                }
            }
        })
        .await
    }

    /// Deletes the referrer `referrer` of `subject`: first takes it out of the subject's
    /// tag-schema index (where the registry keeps one), then deletes its manifest. A
    /// crash in between leaves an unlisted manifest, never a listing of a missing one.
    pub async fn delete_referrer(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<(), RegistryError> {
        if self.referrers_api_known(repository) != Some(true) {
            self.edit_tag_schema(repository, subject, SubjectState::Existing, |manifests| {
                manifests.retain(|d| &d.digest != referrer)
            })
            .await?;
        }
        self.delete_manifest(repository, referrer).await?;
        if let Some(cache) = &self.inner.cache {
            cache
                .referrers
                .invalidate(&cache.named(format!("{repository}@{subject}")))
                .await;
        }
        Ok(())
    }

    /// Read-modify-write of the tag-schema index of `subject`, serialised per subject
    /// within this process. `edit` adds or removes entries; the index is written only
    /// when their number changed.
    async fn edit_tag_schema(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        subject_state: SubjectState,
        edit: impl FnOnce(&mut Vec<Descriptor>),
    ) -> Result<(), RegistryError> {
        let held = self
            .inner
            .edit_locks
            .lock(format!("{repository}@{subject}"))
            .await;
        let mut index = match subject_state {
            SubjectState::Existing => self
                .tag_schema_index(repository, subject)
                .await?
                .unwrap_or_else(ImageIndex::empty),
            SubjectState::New => ImageIndex::empty(),
        };
        let before = index.manifests.len();
        edit(&mut index.manifests);
        if index.manifests.len() == before {
            return Ok(());
        }
        index.media_type = Some(OCI_INDEX.to_string());
        let bytes = serde_json::to_vec(&index).expect("indexes serialize");
        let tag = referrers_tag(repository, subject)?;
        // Another replica may have taken the lock and changed the index since it was read.
        held.check().map_err(RegistryError::LockLost)?;
        self.put_manifest(repository, &Target::Tag(tag), OCI_INDEX, bytes.into())
            .await?;
        Ok(())
    }
}

/// The tag-schema tag of `subject`, or an error naming it.
fn referrers_tag(repository: &RepositoryName, subject: &Digest) -> Result<Tag, RegistryError> {
    crate::tag_schema::referrers_tag(subject).map_err(|source| RegistryError::Digest {
        what: format!("referrers tag of {repository}@{subject}"),
        source,
    })
}

/// Whether a subject may already have referrers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectState {
    /// It may: its tag-schema index is read and extended.
    Existing,
    /// It was made by this process a moment ago and nothing else can refer to it yet:
    /// its tag-schema index is written without being read first.
    New,
}
