//! Keeps each repository's summary (see [`crate::catalog::summary`]) current, where an
//! aggregate repository holds them: the walk writes the summary of each repository it
//! walked, from the tags it found; a job notes the image it published, and once the
//! queue is idle the summaries of those repositories change by those images alone.

use std::collections::BTreeMap;

use super::job::JobContext;
use crate::artifact::now_rfc3339;
use crate::catalog::summary::RepositorySummary;
use crate::catalog::CatalogError;
use crate::digest::Digest;
use crate::publish::Signable;
use crate::reference::{summary_tag, RepositoryName, Tag};
use crate::trust::Verified;

impl JobContext {
    /// Notes that a job published (or found complete) `digest` in `repository`, under
    /// `tag` when the registry confirmed it.
    pub fn note_published(&self, repository: &RepositoryName, tag: Option<&Tag>, digest: &Digest) {
        if self.repositories.aggregate().is_none() || !self.record {
            return;
        }
        self.published
            .lock()
            .expect("published lock")
            .entry(repository.clone())
            .or_default()
            .push((tag.cloned(), digest.clone()));
    }

    /// The summary of `repository` stored beside the aggregate, when there is one that
    /// verifies with the publisher's key; `None` without an aggregate repository.
    pub async fn stored_summary(
        &self,
        repository: &RepositoryName,
    ) -> Result<Option<Verified<RepositorySummary>>, String> {
        let Some(stored_in) = self.repositories.aggregate() else {
            return Ok(None);
        };
        let own = self.publisher.own_trust();
        match RepositorySummary::stored(&self.client, stored_in, repository, own).await {
            Ok(stored) => Ok(stored.and_then(|s| s.document.verified())),
            Err(CatalogError::Registry(e)) if e.is_transient() => {
                Err(format!("reading the summary of {repository}: {e}"))
            }
            // What cannot be read (a manifest a pusher put under the tag that does not
            // parse, a missing blob) is no summary: the next write replaces it.
            Err(e) => {
                tracing::warn!(%repository, error = %e, "the stored summary cannot be read; it is written anew");
                Ok(None)
            }
        }
    }

    /// Writes the summary of `repository` with `tags` (each image tag and its digest,
    /// out of `listed`) when it differs from `previous`, what the caller read; whether
    /// it did. Images the summary holds complete for the current DB are kept; the rest
    /// are read again, and `stale` ones always are; `rechecked` ones, whose sets were
    /// just checked in full, are noted checked now. A write happens under the
    /// repository's lock, from the summary stored then: what another writer (a job's
    /// note, a walk) stored since `previous` was read is built on, not lost.
    pub async fn summarise(
        &self,
        repository: &RepositoryName,
        previous: Option<&Verified<RepositorySummary>>,
        tags: &[(Tag, Digest)],
        listed: usize,
        stale: &[Digest],
        rechecked: &[Digest],
    ) -> Result<bool, String> {
        let Some(stored_in) = self.repositories.aggregate().filter(|_| self.record) else {
            return Ok(false);
        };
        let db_built = self
            .publisher
            .grype_db()
            .await
            .map_err(|e| e.to_string())?
            .built;
        let db_built = &db_built;
        let build = |mut kept: Option<RepositorySummary>| async move {
            if let Some(kept) = &mut kept {
                for digest in stale {
                    kept.images.remove(&digest.to_string());
                }
            }
            let own = self.publisher.own_trust();
            let mut summary = RepositorySummary::update(
                &self.client,
                repository,
                kept.as_ref(),
                tags,
                listed,
                db_built,
                own,
            )
            .await
            .map_err(|e| format!("summarising {repository}: {e}"))?;
            let now = now_rfc3339();
            for digest in rechecked {
                if let Some(image) = summary.images.get_mut(&digest.to_string()) {
                    image.checked = Some(now.clone());
                }
            }
            Ok::<_, String>(summary)
        };
        // Built on `previous` first: when nothing changed, the common case, there is no
        // lock and no write.
        let built = build(previous.map(|p| p.get().clone())).await?;
        if previous.is_some_and(|p| *p.get() == built) {
            return Ok(false);
        }
        let _held = self.summary_locks.lock(repository.to_string()).await;
        let current = self.stored_summary(repository).await?;
        // Built again only when another writer stored a summary since `previous`: the
        // images are read once otherwise.
        let unchanged = current.as_ref().map(Verified::get) == previous.map(Verified::get);
        let summary = match unchanged {
            true => built,
            false => build(current.as_ref().map(|p| p.get().clone())).await?,
        };
        if current.as_ref().is_some_and(|p| *p.get() == summary) {
            return Ok(false);
        }
        let document = Signable::repository_summary(&summary, &now_rfc3339());
        self.publisher
            .replace_tagged(
                stored_in,
                summary_tag(repository),
                document,
                current.as_ref(),
            )
            .await
            .map_err(|e| format!("storing the summary of {repository}: {e}"))?;
        Ok(true)
    }

    /// Changes the summary of each repository where jobs published by what they
    /// published; how many were written. A repository without a stored summary waits
    /// for the walk, which writes one from every tag.
    pub async fn store_published(&self) -> Result<usize, String> {
        let noted = std::mem::take(&mut *self.published.lock().expect("published lock"));
        let mut written = 0;
        let mut noted = noted.into_iter();
        while let Some((repository, images)) = noted.next() {
            let kept = match self.stored_summary(&repository).await {
                Ok(Some(previous)) => previous,
                // The walk that found the images has not stored the summary yet, or it
                // cannot be read now: kept for the next try.
                found => {
                    self.keep_for_later(repository, images);
                    match found {
                        Err(e) => {
                            noted.for_each(|(r, i)| self.keep_for_later(r, i));
                            return Err(e);
                        }
                        _ => continue,
                    }
                }
            };
            let mut tags: BTreeMap<String, (Tag, Digest)> = BTreeMap::new();
            for (tag, digest) in kept.get().tags.iter() {
                if let (Ok(t), Ok(d)) = (tag.parse::<Tag>(), crate::digest::parse(digest)) {
                    tags.insert(tag.clone(), (t, d));
                }
            }
            let mut listed = kept.get().listed;
            for (tag, digest) in &images {
                if let Some(tag) = tag {
                    let new = tags
                        .insert(tag.to_string(), (tag.clone(), digest.clone()))
                        .is_none();
                    listed += usize::from(new);
                }
            }
            let tags: Vec<(Tag, Digest)> = tags.into_values().collect();
            let stale: Vec<Digest> = images.iter().map(|(_, d)| d.clone()).collect();
            match self
                .summarise(&repository, Some(&kept), &tags, listed, &stale, &[])
                .await
            {
                Ok(stored) => written += usize::from(stored),
                Err(e) => {
                    self.keep_for_later(repository, images);
                    noted.for_each(|(r, i)| self.keep_for_later(r, i));
                    return Err(e);
                }
            }
        }
        Ok(written)
    }

    /// Puts `images` back among those noted for `repository`'s summary.
    fn keep_for_later(&self, repository: RepositoryName, images: Vec<(Option<Tag>, Digest)>) {
        self.published
            .lock()
            .expect("published lock")
            .entry(repository)
            .or_default()
            .extend(images);
    }
}
