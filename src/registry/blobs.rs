//! Blobs: streamed, size-limited, digest-verified fetch; existence checks; push.

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};

use super::client::Client;
use super::counter::RequestKind;
use super::error::RegistryError;
use super::transport::{pull_scope, push_scope, Request};
use crate::cache::coalesced;
use crate::digest::{self, Digest};
use crate::reference::RepositoryName;

/// How an upload session begins.
#[derive(Clone, Copy)]
enum Start {
    /// POST with the blob, which a registry may take at once (201) or answer with a
    /// session to PUT it to (202).
    Monolithic,
    /// POST asking to mount the blob from the repository itself: 201 when the
    /// repository holds it already, else a session (202). A registry needs push rights
    /// for either answer, so it proves the client may write.
    Mount,
}

impl Client {
    /// Fetches a blob, refusing more than `limit` bytes (default: the client's
    /// `max_blob_bytes`), and checks its digest. Served from the client's cache when it
    /// has one.
    pub async fn get_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        limit: Option<u64>,
    ) -> Result<Bytes, RegistryError> {
        let limit = limit.unwrap_or(self.inner.config.max_blob_bytes);
        let Some(cache) = &self.inner.cache else {
            return self.fetch_blob(repository, digest, limit).await;
        };
        let key = format!("{repository}@{digest}");
        let bytes = if cache.may_share(repository) {
            coalesced(
                &cache.blobs,
                key,
                self.fetch_blob(repository, digest, limit),
            )
            .await?
        } else {
            let bytes = self.fetch_blob(repository, digest, limit).await?;
            cache.blobs.insert(key, bytes.clone()).await;
            bytes
        };
        // A caller with a larger limit may have filled the entry.
        if bytes.len() as u64 > limit {
            return Err(RegistryError::TooLarge {
                what: format!("GET blob {repository}@{digest}"),
                limit,
            });
        }
        Ok(bytes)
    }

    async fn fetch_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        limit: u64,
    ) -> Result<Bytes, RegistryError> {
        let what = format!("GET blob {repository}@{digest}");
        let req = Request::new(
            Method::GET,
            RequestKind::Blob,
            format!("/v2/{repository}/blobs/{digest}"),
            pull_scope(repository.as_str()),
            what.clone(),
        );
        let (_, bytes) = self.fetch(req, limit).await?;
        digest::verify(digest, &bytes).map_err(|source| RegistryError::Digest { what, source })?;
        Ok(bytes)
    }

    /// Whether the repository holds the blob.
    pub async fn blob_exists(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let what = format!("HEAD blob {repository}@{digest}");
        let req = Request::new(
            Method::HEAD,
            RequestKind::Blob,
            format!("/v2/{repository}/blobs/{digest}"),
            pull_scope(repository.as_str()),
            what.clone(),
        );
        let response = self.send(req).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => {
                self.remember_blob(repository, digest);
                Ok(true)
            }
            _ => Err(self.unexpected(response, what).await),
        }
    }

    /// Pushes a blob unless the repository already holds it: nothing when this client
    /// has seen the blob there before, else one mount request (a blob the repository
    /// holds is mounted from itself and answered 201), and the upload only when needed.
    pub async fn push_blob_if_missing(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        data: &Bytes,
    ) -> Result<(), RegistryError> {
        if self.knows_blob(repository, digest) {
            return Ok(());
        }
        self.push(repository, digest, data.clone(), Start::Mount)
            .await
    }

    /// Pushes a blob: one monolithic POST where the registry allows it, else POST then
    /// PUT. Completing an upload is not idempotent, so it is never sent twice blindly:
    /// when its answer is lost (a timeout, a broken connection, a 5xx), a HEAD asks
    /// whether the blob arrived, and only if not is the upload started again.
    pub async fn push_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        data: Bytes,
    ) -> Result<(), RegistryError> {
        self.push(repository, digest, data, Start::Monolithic).await
    }

    async fn push(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        data: Bytes,
        start: Start,
    ) -> Result<(), RegistryError> {
        crate::digest::verify(digest, &data).map_err(|source| RegistryError::Digest {
            what: format!("push blob {repository}@{digest}"),
            source,
        })?;
        let known_before = self.knows_blob(repository, digest);
        let _one_at_a_time = self
            .inner
            .upload_locks
            .lock(format!("{repository}@{digest}"))
            .await;
        if !known_before && self.knows_blob(repository, digest) {
            // Another push of this blob arrived while this one waited.
            return Ok(());
        }
        let mut attempt = 1;
        loop {
            let failed = match self.upload(repository, digest, data.clone(), start).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(e),
            };
            if self.blob_exists(repository, digest).await.unwrap_or(false) {
                tracing::debug!(%repository, %digest, error = %failed, "the upload's answer was lost, but the blob arrived");
                return Ok(());
            }
            if attempt >= self.inner.config.max_attempts {
                return Err(failed);
            }
            tracing::warn!(%repository, %digest, attempt, error = %failed, "blob upload failed; starting it again");
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// One upload session, each request sent once.
    async fn upload(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        data: Bytes,
        start: Start,
    ) -> Result<(), RegistryError> {
        let what = format!("POST blob upload {repository}@{digest}");
        let post = match start {
            Start::Monolithic => Request::new(
                Method::POST,
                RequestKind::Upload,
                format!("/v2/{repository}/blobs/uploads/?digest={digest}"),
                push_scope(repository.as_str()),
                what.clone(),
            )
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(data.clone()),
            Start::Mount => Request::new(
                Method::POST,
                RequestKind::Upload,
                format!("/v2/{repository}/blobs/uploads/?mount={digest}&from={repository}"),
                push_scope(repository.as_str()),
                what.clone(),
            ),
        };
        let response = self.send(post).await?;
        match response.status() {
            StatusCode::CREATED => {
                self.remember_blob(repository, digest);
                Ok(())
            }
            StatusCode::ACCEPTED => {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| RegistryError::InvalidResponse {
                        what: what.clone(),
                        reason: "202 without Location".into(),
                    })?;
                let url = upload_url(location, digest);
                let what = format!("PUT blob upload {repository}@{digest}");
                let mut put = Request::new(
                    Method::PUT,
                    RequestKind::Upload,
                    url,
                    push_scope(repository.as_str()),
                    what.clone(),
                )
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(data);
                // The PUT closes the session: sent again, it finds the session gone.
                put.idempotent = false;
                let response = self.send(put).await?;
                if response.status() == StatusCode::CREATED {
                    self.remember_blob(repository, digest);
                    Ok(())
                } else {
                    Err(self.unexpected(response, what).await)
                }
            }
            _ => Err(self.unexpected(response, what).await),
        }
    }
}

impl Client {
    /// Checks that this client may push to `repository`, before anything expensive is
    /// done for it, by pushing the empty JSON blob that every artifact's config is
    /// anyway: one mount request when the repository holds it, which is what the
    /// artifacts' own push would cost. Remembered per repository.
    pub async fn check_writable(&self, repository: &RepositoryName) -> Result<(), RegistryError> {
        let known = self
            .inner
            .writable
            .lock()
            .expect("writable lock")
            .contains(repository.as_str());
        if known {
            return Ok(());
        }
        let empty = Bytes::from_static(crate::media_types::EMPTY_JSON_BYTES);
        self.push(
            repository,
            &crate::digest::sha256(&empty),
            empty,
            Start::Mount,
        )
        .await?;
        self.inner
            .writable
            .lock()
            .expect("writable lock")
            .insert(repository.to_string());
        Ok(())
    }

    pub(super) fn knows_blob(&self, repository: &RepositoryName, digest: &Digest) -> bool {
        self.inner
            .known_blobs
            .contains_key(&format!("{repository}@{digest}"))
    }

    pub(super) fn remember_blob(&self, repository: &RepositoryName, digest: &Digest) {
        self.inner
            .known_blobs
            .insert(format!("{repository}@{digest}"), ());
    }

    /// Forgets that the repository holds `digest`: the registry said otherwise.
    pub(super) fn forget_blob(&self, repository: &RepositoryName, digest: &Digest) {
        self.inner
            .known_blobs
            .invalidate(&format!("{repository}@{digest}"));
    }
}

/// The upload `Location` with `digest=` added; relative locations stay on the registry.
fn upload_url(location: &str, digest: &Digest) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{}{separator}digest={digest}", session_path(location))
}

/// The path and query of an upload session's `Location`: an absolute one is reduced to
/// them, so that requests (and credentials) go to the registry, wherever it points.
pub(super) fn session_path(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        },
        Err(_) => location.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_url_appends_the_digest() {
        let d = crate::digest::sha256(b"{}");
        assert_eq!(
            upload_url("/v2/a/blobs/uploads/u1", &d),
            format!("/v2/a/blobs/uploads/u1?digest={d}")
        );
        assert_eq!(
            upload_url("http://h:1/v2/a/blobs/uploads/u1?_state=x", &d),
            format!("/v2/a/blobs/uploads/u1?_state=x&digest={d}")
        );
    }
}
