//! Keeps the stored catalog aggregate current: once jobs have published or a walk has
//! ended, and the queue is idle, the aggregate is computed again and, when it differs
//! from the stored one, stored as a signed artifact tagged `refcat-aggregate`, so that
//! `refcat serve` answers `/v1/vulnerabilities` with one fetch. Beside it, where a glob
//! selects the repositories, the ones found are stored as `refcat-repositories`, and the
//! complete sets the worker made or found as the subject index, `refcat-subjects`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio::sync::Notify;

use super::job::JobContext;
use super::queue::JobQueue;
use crate::artifact::now_rfc3339;
use crate::catalog::aggregate::{self, VerifiedAggregate};
use crate::catalog::repositories::RepositoryList;
use crate::catalog::subjects::SubjectIndex;
use crate::publish::Signable;
use crate::reference::{RepositoryName, AGGREGATE_TAG, REPOSITORIES_TAG, SUBJECTS_TAG};
use crate::trust::Verified;

/// Where and how the aggregate is stored.
#[derive(Clone, Debug)]
pub struct AggregateTarget {
    /// The repository that holds it (left out of the aggregate itself).
    pub repository: RepositoryName,
    /// The tag that summarises a repository when it has it, as `refcat serve
    /// --default-tag` takes it.
    pub default_tag: Option<String>,
}

/// How often the aggregate is computed by a full walk of every default and floating
/// tag, as a check on the one folded from the repository summaries.
pub const FULL_CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);

/// The aggregate by a full walk of every covered repository's default and floating
/// tags, from this publisher's own results alone, verified with its key: a look-alike
/// result anyone with push access attached never reaches what refcat signs.
async fn walked(
    context: &JobContext,
    target: &AggregateTarget,
) -> Result<VerifiedAggregate, String> {
    let walked = aggregate::walk(
        &context.client,
        target.default_tag.as_deref(),
        context.publisher.own_trust(),
        &context.repositories,
    )
    .await
    .map_err(|e| format!("computing the aggregate: {e}"))?;
    let verified: Vec<_> = walked
        .hits
        .into_iter()
        .filter_map(|hit| Some((hit.repository, hit.tag, hit.matches.verified()?)))
        .collect();
    Ok(VerifiedAggregate::of(&verified, walked.coverage))
}

/// The aggregate folded from every covered repository's stored summary (verified with
/// the publisher's key); `None` while one has none yet.
async fn folded(
    context: &JobContext,
    target: &AggregateTarget,
) -> Result<Option<VerifiedAggregate>, String> {
    let listed = context
        .repositories
        .list(&context.client)
        .await
        .map_err(|e| format!("listing the repositories: {e}"))?
        .into_repositories();
    let summaries: Vec<_> = futures_util::stream::iter(listed)
        .map(|repository| async move { context.stored_summary(&repository).await })
        .buffered(8)
        .try_collect()
        .await?;
    let Some(summaries) = summaries.into_iter().collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    Ok(Some(VerifiedAggregate::of_summaries(
        &summaries,
        target.default_tag.as_deref(),
    )))
}

/// Stores the aggregate when it changed; whether it did. It is folded from the
/// repository summaries, which change only by what changed; with `full`, or while a
/// repository has no summary yet, it is walked from every default and floating tag (a
/// summary that disagrees with the walk is logged, and the walk wins).
pub async fn store(
    context: &JobContext,
    target: &AggregateTarget,
    full: bool,
) -> Result<bool, String> {
    let client = &context.client;
    let own = context.publisher.own_trust();
    // A fold that fails (a summary unreadable for now) leaves the aggregate to the walk.
    let folded = folded(context, target).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the aggregate cannot be folded from the summaries; walking");
        None
    });
    let data = match (full, folded) {
        (false, Some(folded)) => {
            context.stats.aggregated("folded");
            folded
        }
        (_, folded) => {
            let walked = walked(context, target).await?;
            context.stats.aggregated("walked");
            if folded.is_some_and(|f| f != walked) {
                tracing::warn!("the aggregate folded from the repository summaries differs from a full walk; the walk's is stored");
            }
            walked
        }
    };
    let stored = aggregate::stored(client, &target.repository, own)
        .await
        .map_err(|e| format!("reading the stored aggregate: {e}"))?
        .and_then(|current| current.document.verified());
    if stored
        .as_ref()
        .is_some_and(|current| current.get() == data.data())
    {
        return Ok(false);
    }
    let document = Signable::aggregate(&data, &now_rfc3339());
    replace(context, target, AGGREGATE_TAG, document, stored.as_ref())
        .await
        .map_err(|e| format!("storing the aggregate: {e}"))?;
    Ok(true)
}

/// Stores, where a glob selects the repositories, the ones found (from `_catalog`,
/// names and webhooks) when they changed, so that `backfill` and `serve` find them
/// where `_catalog` is refused; whether it did.
pub async fn store_repositories(
    context: &JobContext,
    target: &AggregateTarget,
) -> Result<bool, String> {
    let (client, covered) = (&context.client, &context.repositories);
    if !covered.has_globs() {
        return Ok(false);
    }
    let listed = covered
        .list(client)
        .await
        .map_err(|e| format!("listing the repositories: {e}"))?;
    let data = RepositoryList::of(&listed);
    let stored = covered
        .stored(client)
        .await
        .map_err(|e| format!("reading the stored repository list: {e}"))?
        .and_then(|current| current.document.verified());
    if data.repositories.is_empty() || stored.as_ref().is_some_and(|s| *s.get() == data) {
        return Ok(false);
    }
    let document = Signable::repository_list(&listed, &now_rfc3339());
    replace(context, target, REPOSITORIES_TAG, document, stored.as_ref())
        .await
        .map_err(|e| format!("storing the repository list: {e}"))?;
    Ok(true)
}

/// Stores the subject index with the complete sets noted since it was last stored, when
/// they add to it; whether it did. The stored index counts only when it verifies with
/// the publisher's key: an index a pusher wrote names nothing refcat would copy from.
pub async fn store_subjects(
    context: &JobContext,
    target: &AggregateTarget,
) -> Result<bool, String> {
    let noted = std::mem::take(&mut *context.complete.lock().expect("subject index lock"));
    if noted.is_empty() {
        return Ok(false);
    }
    let stored = SubjectIndex::stored(
        &context.client,
        &target.repository,
        context.publisher.own_trust(),
    )
    .await
    .map_err(|e| format!("reading the stored subject index: {e}"));
    let stored = match stored {
        Ok(stored) => stored.and_then(|current| current.document.verified()),
        Err(e) => {
            context
                .complete
                .lock()
                .expect("subject index lock")
                .merge(&noted);
            return Err(e);
        }
    };
    let mut index = stored.as_ref().map(|s| s.get().clone()).unwrap_or_default();
    if !index.merge(&noted) {
        return Ok(false);
    }
    let document = Signable::subject_index(&index, &now_rfc3339());
    if let Err(e) = replace(context, target, SUBJECTS_TAG, document, stored.as_ref()).await {
        // Kept for the next try.
        context
            .complete
            .lock()
            .expect("subject index lock")
            .merge(&noted);
        return Err(format!("storing the subject index: {e}"));
    }
    Ok(true)
}

/// Stores `document` signed, tagged `tag` in the target repository, replacing
/// `previous` (what the tag held, verified with the publisher's key).
async fn replace<T>(
    context: &JobContext,
    target: &AggregateTarget,
    tag: &str,
    document: Signable,
    previous: Option<&Verified<T>>,
) -> Result<(), crate::publish::PublishError> {
    let tag = tag.parse().expect("refcat's own tags are valid");
    context
        .publisher
        .replace_tagged(&target.repository, tag, document, previous)
        .await
}

/// Stores the aggregate after each `changed` notification, once `queue` is idle
/// (across replicas, with a shared queue). Of replicas sharing a broker, the one that
/// holds the aggregate's lock writes; the others leave it to that one.
pub async fn keep_current(
    context: Arc<JobContext>,
    queue: JobQueue,
    target: AggregateTarget,
    changed: Arc<Notify>,
) {
    // The first full walk comes one interval after start, not at it: at 10,000 tags it
    // reads for minutes, and a worker restarted often would do little else. Until then
    // the aggregate is folded, or walked while a repository has no summary.
    let mut last_full = std::time::Instant::now();
    loop {
        changed.notified().await;
        while !queue.idle().await {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let _lease = match &context.broker {
            None => None,
            Some(broker) => match broker.locks().try_lock("aggregate").await {
                Ok(Some(lease)) => Some(lease),
                Ok(None) => {
                    tracing::debug!("another replica writes the catalog aggregate now");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the aggregate's lock; the next change retries");
                    continue;
                }
            },
        };
        let repository = &target.repository;
        said(
            repository,
            "the repositories found",
            store_repositories(&context, &target).await,
        );
        said(
            repository,
            "the subject index",
            store_subjects(&context, &target).await,
        );
        said(
            repository,
            "the repository summaries",
            context.store_published().await.map(|n| n > 0),
        );
        let full = last_full.elapsed() >= FULL_CHECK_EVERY;
        let stored = store(&context, &target, full).await;
        if full && stored.is_ok() {
            last_full = std::time::Instant::now();
        }
        said(repository, "the catalog aggregate", stored);
    }
}

/// Logs what became of storing `what` in `repository`: an error is retried on the next
/// change.
fn said(repository: &RepositoryName, what: &str, stored: Result<bool, String>) {
    match stored {
        Ok(true) => tracing::info!(%repository, "stored {what}"),
        Ok(false) => tracing::debug!(%repository, "{what}: unchanged"),
        Err(e) => {
            tracing::error!(error = %e, "{what} was not stored; the next change retries")
        }
    }
}
