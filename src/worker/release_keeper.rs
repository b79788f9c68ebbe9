//! Keeping the release log: the worker adds each tagged image it confirms, signs the
//! log with its key, and keeps a release a tag just left pullable by digest. It acts
//! only on a log verified with its own key and on what the registry answered in the
//! same job: a release it finds gone otherwise (deleted, perhaps on purpose) is marked
//! so and never pushed back.

use super::job::JobContext;
use crate::artifact::now_rfc3339;
use crate::media_types::OCI_INDEX;
use crate::oci::Descriptor;
use crate::publish::{PublishError, Signable};
use crate::records::release_log::{self, LogEdit, HEAD_LIMIT};
use crate::reference::{RepositoryName, Tag, Target};
use crate::registry::{Client, RegistryError};
use crate::trust::Shown;

impl JobContext {
    /// Adds `seen` (tags and the images they point at, as the registry answered) to the
    /// release log of `repository`, writing it, signed, only when something changed; the
    /// log as it is now (`None` when logs are not written).
    ///
    /// A release that a newly recorded tag just left is kept pullable by digest
    /// ([`keep_pullable`]). With `every_tag` (`seen` holds every tag of the repository),
    /// each release no tag points at is looked up once: marked kept when the registry
    /// still serves it, gone when it does not.
    pub async fn record_releases(
        &self,
        repository: &RepositoryName,
        seen: &[(Tag, Descriptor)],
        every_tag: bool,
    ) -> Result<Option<LogEdit>, PublishError> {
        if seen.is_empty() || !self.record {
            return Ok(None);
        }
        let held = self.release_logs.lock(repository.to_string()).await;
        let own = self.publisher.own_trust();
        let (mut edit, previous) = match release_log::read(&self.client, repository, own).await? {
            Some(Shown::Verified(log)) => {
                let (edit, proof) = LogEdit::resume(log);
                (edit, Some(proof))
            }
            // Not signed with this worker's key (or by an older refcat that did not sign
            // it): nothing in it is believed, and a new log replaces it, keeping it
            // referenced so that what it lists is not lost to garbage collection.
            _ => {
                let mut edit = LogEdit::new();
                let tag = Target::Tag(release_log::tag());
                if let Some(old) = self.client.head_manifest(repository, &tag).await? {
                    tracing::warn!(%repository, head = %old.digest,
                        "the release log is not signed with this worker's key; a new one replaces it");
                    edit.supersede(&old);
                }
                (edit, None)
            }
        };
        let now = now_rfc3339();
        let added = edit.merge(seen, &now);
        let mut changed = !added.is_empty();
        for release in edit.log().left_by(&added) {
            match keep_pullable(&self.client, repository, &release).await {
                Ok(true) => tracing::info!(%repository, release = %release.digest,
                    "release no longer served by digest after its tag moved; pushed it again"),
                Ok(false) => {}
                // The log and the job stand without it; the tag's move is not seen again.
                Err(e) => tracing::warn!(%repository, release = %release.digest, error = %e,
                    "could not keep a release whose tag moved pullable"),
            }
        }
        if every_tag {
            for release in edit.log().untagged(seen) {
                let target = Target::Digest(release.digest.clone());
                match self.client.head_manifest(repository, &target).await {
                    Ok(Some(_)) => edit.mark_kept(&release.digest, &now),
                    Ok(None) => {
                        tracing::info!(%repository, release = %release.digest,
                            "a release no tag points at is gone from the registry; not pushed again");
                        edit.mark_gone(&release.digest, &now);
                    }
                    Err(e) => {
                        tracing::warn!(%repository, release = %release.digest, error = %e,
                            "could not look up a release no tag points at; the next walk tries again");
                        continue;
                    }
                }
                changed = true;
            }
        }
        if changed {
            // Another replica may have taken the log's lock while this one was away.
            held.check().map_err(RegistryError::LockLost)?;
            write(self, repository, &edit, previous.as_ref()).await?;
        }
        Ok(Some(edit))
    }
}

/// Writes `edit` as the log of `repository`: new sealed segments by digest, then the
/// head, signed, under its tag, replacing `previous`.
async fn write(
    context: &JobContext,
    repository: &RepositoryName,
    edit: &LogEdit,
    previous: Option<&crate::trust::Verified<()>>,
) -> Result<(), PublishError> {
    let sealed = edit.seal(repository, HEAD_LIMIT);
    for (digest, bytes) in sealed.segments() {
        let target = Target::Digest(digest.clone());
        context
            .client
            .put_manifest(repository, &target, OCI_INDEX, bytes.clone())
            .await?;
    }
    context
        .publisher
        .replace_tagged(
            repository,
            release_log::tag(),
            Signable::release_log(&sealed),
            previous,
        )
        .await
}

/// Keeps `release`, whose tag just moved away, pullable by digest; whether it had to be
/// pushed again. zot serves a manifest only while its `index.json` names it, and a
/// tag's move drops the entry of the digest it left, though the release log still
/// references its bytes and zot still serves them as a blob. Such a release is pushed
/// again by digest, from those bytes once their digest is checked. `release` comes from
/// the log this worker signed, which it read verified.
async fn keep_pullable(
    client: &Client,
    repository: &RepositoryName,
    release: &Descriptor,
) -> Result<bool, RegistryError> {
    let target = Target::Digest(release.digest.clone());
    if client.head_manifest(repository, &target).await?.is_some() {
        return Ok(false);
    }
    let bytes = client
        .get_blob(repository, &release.digest, Some(release.size))
        .await?;
    client
        .put_manifest(repository, &target, &release.media_type, bytes)
        .await?;
    Ok(true)
}
