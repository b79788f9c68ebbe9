//! Manifests and indexes: fetch (verified against their digest), HEAD, push, delete.

use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::cache::ContentCache;
use super::client::Client;
use super::counter::RequestKind;
use super::error::RegistryError;
pub use super::fetched::FetchedManifest;
use super::transport::{pull_scope, push_scope, Request};
use crate::cache::coalesced;
use crate::digest::{self, Digest};
use crate::media_types::{DOCKER_MANIFEST_LIST, MANIFEST_TYPES, OCI_INDEX};
use crate::oci::{Descriptor, Manifest};
use crate::reference::{RepositoryName, Target};

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
const OCI_SUBJECT: &str = "oci-subject";

/// What a manifest push reported.
#[derive(Clone, Debug)]
pub struct PushedManifest {
    /// The digest of the pushed bytes.
    pub digest: Digest,
    /// Whether the registry answered with `OCI-Subject`, i.e. it indexes referrers itself.
    pub subject_acknowledged: bool,
}

impl Client {
    /// Fetches a manifest or index by tag or digest and checks its digest: against the
    /// reference when it names one, else against `Docker-Content-Digest`. Served from the
    /// client's cache when it has one.
    pub async fn get_manifest(
        &self,
        repository: &RepositoryName,
        target: &Target,
    ) -> Result<FetchedManifest, RegistryError> {
        let Some(cache) = &self.inner.cache else {
            return self.fetch_manifest(repository, target).await;
        };
        let fetched = match target.digest() {
            Some(digest) if !cache.may_share(repository) => {
                let fetched = Arc::new(self.fetch_manifest(repository, target).await?);
                let key = format!("{repository}@{digest}");
                cache.manifests.insert(key, fetched.clone()).await;
                fetched
            }
            Some(digest) => {
                let fetch = async { self.fetch_manifest(repository, target).await.map(Arc::new) };
                coalesced(&cache.manifests, format!("{repository}@{digest}"), fetch).await?
            }
            None => {
                let fetch = async {
                    let fetched = Arc::new(self.fetch_manifest(repository, target).await?);
                    let by_digest = format!("{repository}@{}", fetched.digest);
                    cache.manifests.insert(by_digest, fetched.clone()).await;
                    Ok(fetched)
                };
                let key = cache.named(format!("{repository}:{}", target.manifest_reference()));
                coalesced(&cache.tagged, key, fetch).await?
            }
        };
        Ok(fetched.as_ref().clone())
    }

    async fn fetch_manifest(
        &self,
        repository: &RepositoryName,
        target: &Target,
    ) -> Result<FetchedManifest, RegistryError> {
        let reference = target.manifest_reference();
        let what = format!("GET manifest {repository}:{reference}");
        let req = Request::new(
            Method::GET,
            RequestKind::Manifest,
            format!("/v2/{repository}/manifests/{reference}"),
            pull_scope(repository.as_str()),
            what.clone(),
        )
        .header(ACCEPT, &MANIFEST_TYPES.join(", "));
        let (headers, bytes) = self
            .fetch(req, self.inner.config.max_manifest_bytes)
            .await?;
        let served_digest = headers
            .get(DOCKER_CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let media_type = header_media_type(&headers);
        let expected = match (target.digest(), served_digest) {
            (Some(d), _) => d.clone(),
            (None, Some(header)) => {
                digest::parse(&header).map_err(|source| RegistryError::Digest {
                    what: what.clone(),
                    source,
                })?
            }
            (None, None) => digest::sha256(&bytes),
        };
        digest::verify(&expected, &bytes).map_err(|source| RegistryError::Digest {
            what: what.clone(),
            source,
        })?;
        let manifest =
            Manifest::parse(&media_type, &bytes).map_err(|e| RegistryError::InvalidResponse {
                what: what.clone(),
                reason: e.to_string(),
            })?;
        let media_type = match &manifest {
            Manifest::Image(m) => m.media_type.clone(),
            Manifest::Index(i) => i.media_type.clone(),
        }
        .unwrap_or(media_type);
        Ok(FetchedManifest {
            media_type,
            digest: expected,
            bytes,
            manifest,
        })
    }

    /// HEADs a manifest: its descriptor, or `None` when it does not exist.
    pub async fn head_manifest(
        &self,
        repository: &RepositoryName,
        target: &Target,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let reference = target.manifest_reference();
        let what = format!("HEAD manifest {repository}:{reference}");
        let req = Request::new(
            Method::HEAD,
            RequestKind::Manifest,
            format!("/v2/{repository}/manifests/{reference}"),
            pull_scope(repository.as_str()),
            what.clone(),
        )
        .header(ACCEPT, &MANIFEST_TYPES.join(", "));
        let response = self.send(req).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let digest = match (
                    target.digest(),
                    response
                        .headers()
                        .get(DOCKER_CONTENT_DIGEST)
                        .and_then(|v| v.to_str().ok()),
                ) {
                    (Some(d), _) => d.clone(),
                    (None, Some(h)) => {
                        digest::parse(h).map_err(|source| RegistryError::Digest {
                            what: what.clone(),
                            source,
                        })?
                    }
                    (None, None) => {
                        return Err(RegistryError::InvalidResponse {
                            what,
                            reason: "no Docker-Content-Digest header".into(),
                        })
                    }
                };
                Ok(Some(Descriptor::new(
                    header_media_type(response.headers()),
                    digest,
                    response.content_length().unwrap_or_default(),
                )))
            }
            _ => Err(self.unexpected(response, what).await),
        }
    }

    /// Pushes manifest bytes under `target` (a tag, or the bytes' own digest).
    pub async fn put_manifest(
        &self,
        repository: &RepositoryName,
        target: &Target,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<PushedManifest, RegistryError> {
        let digest = digest::sha256(&bytes);
        if let Some(named) = target.digest() {
            digest::verify(named, &bytes).map_err(|source| RegistryError::Digest {
                what: format!("PUT manifest {repository}@{named}"),
                source,
            })?;
        }
        let reference = target.manifest_reference();
        let what = format!("PUT manifest {repository}:{reference}");
        let req = Request::new(
            Method::PUT,
            RequestKind::Manifest,
            format!("/v2/{repository}/manifests/{reference}"),
            push_scope(repository.as_str()),
            what.clone(),
        )
        .header(CONTENT_TYPE, media_type)
        .body(bytes.clone());
        // docker-registry 2.8 rewrites a manifest's link file, not atomically, whenever
        // the manifest is pushed again (under another tag, say); an index listing it
        // that arrives meanwhile is refused with MANIFEST_BLOB_UNKNOWN, and passes a
        // moment later. A manifest that is really missing fails after the last try.
        let is_index = [OCI_INDEX, DOCKER_MANIFEST_LIST].contains(&media_type);
        let mut attempt = 1;
        let response = loop {
            let response = self.send(req.clone()).await?;
            if response.status().is_success() {
                break response;
            }
            let error = self.unexpected(response, what.clone()).await;
            if !(is_index && error.has_code("MANIFEST_BLOB_UNKNOWN") && attempt < 4) {
                return Err(error);
            }
            tracing::debug!(error = %error, attempt, "index refused for a listed manifest; pushing it again");
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            attempt += 1;
        };
        let subject_acknowledged = response.headers().contains_key(OCI_SUBJECT);
        if let Some(cache) = &self.inner.cache {
            forget_what_a_push_changes(cache, repository, target, &bytes).await;
        }
        Ok(PushedManifest {
            digest,
            subject_acknowledged,
        })
    }

    /// Deletes a manifest by digest. A manifest that is already gone is not an error.
    pub async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let what = format!("DELETE manifest {repository}@{digest}");
        let req = Request::new(
            Method::DELETE,
            RequestKind::Manifest,
            format!("/v2/{repository}/manifests/{digest}"),
            push_scope(repository.as_str()),
            what.clone(),
        );
        let response = self.send(req).await?;
        if let Some(cache) = &self.inner.cache {
            forget_what_a_delete_changes(cache, repository, digest).await;
        }
        match response.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.unexpected(response, what).await),
        }
    }
}

/// Drops the cached entries a manifest push makes stale: the tag it was pushed under, the
/// repository's tag list, and the referrer list of its subject.
async fn forget_what_a_push_changes(
    cache: &ContentCache,
    repository: &RepositoryName,
    target: &Target,
    bytes: &[u8],
) {
    #[derive(serde::Deserialize)]
    struct WithSubject {
        subject: Option<Descriptor>,
    }
    if let Target::Tag(tag) | Target::Pinned(tag, _) = target {
        cache
            .tagged
            .invalidate(&cache.named(format!("{repository}:{tag}")))
            .await;
        cache.tags.invalidate(&cache.named(repository)).await;
    }
    if let Ok(WithSubject {
        subject: Some(subject),
    }) = serde_json::from_slice(bytes)
    {
        let key = cache.named(format!("{repository}@{}", subject.digest));
        cache.referrers.invalidate(&key).await;
    }
}

/// Drops the cached entries a manifest delete makes stale: the manifest, every tag that
/// resolved to it and the repository's tag list (a registry deletes its tags with it),
/// and every referrer list that names it.
async fn forget_what_a_delete_changes(
    cache: &ContentCache,
    repository: &RepositoryName,
    digest: &Digest,
) {
    cache
        .manifests
        .invalidate(&format!("{repository}@{digest}"))
        .await;
    cache.tags.invalidate(&cache.named(repository)).await;
    let prefix = cache.named(format!("{repository}:"));
    let tagged: Vec<String> = cache
        .tagged
        .iter()
        .filter(|(key, fetched)| key.starts_with(&prefix) && &fetched.digest == digest)
        .map(|(key, _)| key.as_ref().clone())
        .collect();
    for key in tagged {
        cache.tagged.invalidate(&key).await;
    }
    let prefix = cache.named(format!("{repository}@"));
    let listing: Vec<String> = cache
        .referrers
        .iter()
        .filter(|(key, list)| key.starts_with(&prefix) && list.iter().any(|d| &d.digest == digest))
        .map(|(key, _)| key.as_ref().clone())
        .collect();
    for key in listing {
        cache.referrers.invalidate(&key).await;
    }
}

fn header_media_type(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .unwrap_or_default()
}
