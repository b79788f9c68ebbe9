//! Running one job: make sure the target is an image (not a referrer or another
//! artifact), note a tagged image in the release log, then publish whatever it lacks.

use futures_util::FutureExt as _;

use super::queue::Outcome;
use super::stats::WorkerStats;
use super::Job;
use crate::catalog::platforms::is_image;
use crate::catalog::repositories::Repositories;
use crate::catalog::subjects::SubjectIndex;
use crate::digest::Digest;
use crate::locks::KeyedLocks;
use crate::publish::Publisher;
use crate::reference::{Reference, RepositoryName, Tag, Target};
use crate::registry::Client;

/// Images published since the summaries were last stored, per repository: each digest
/// with the tag the job confirmed, when there was one.
pub type Published = std::collections::BTreeMap<RepositoryName, Vec<(Option<Tag>, Digest)>>;

/// What every job needs; one per worker, shared by its runners.
pub struct JobContext {
    /// The registry.
    pub client: Client,
    /// The publish pipeline.
    pub publisher: Publisher,
    /// Counters for `/metrics`.
    pub stats: WorkerStats,
    /// Release-log writes, one at a time per repository.
    pub release_logs: KeyedLocks,
    /// Whether release logs are written (not on dry runs).
    pub record: bool,
    /// The repositories walked, and those events may name.
    pub repositories: Repositories,
    /// The broker replicas share work through, when there is one.
    pub broker: Option<crate::broker::Broker>,
    /// Complete sets found or made since the subject index was last stored.
    pub complete: std::sync::Mutex<SubjectIndex>,
    /// Images jobs published since the repository summaries were last stored.
    pub published: std::sync::Mutex<Published>,
    /// Summary writes, one at a time per repository.
    pub summary_locks: KeyedLocks,
}

impl JobContext {
    /// Notes that `repository` now holds refcat's complete set for each of `subjects`,
    /// for the subject index.
    pub fn note_complete<'a>(
        &self,
        repository: &RepositoryName,
        subjects: impl IntoIterator<Item = &'a Digest>,
    ) {
        let mut complete = self.complete.lock().expect("subject index lock");
        for subject in subjects {
            complete.add(subject, repository);
        }
    }
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Whether this process's Grype DB was built no earlier than `wanted` (read again once
/// when it seems older: the DB may have been updated since the last check). A job judged
/// by a newer DB must not be judged again by an older one, which would find the older
/// result current.
async fn has_db_of(context: &JobContext, wanted: &str) -> Result<bool, String> {
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    };
    let Some(wanted) = parse(wanted) else {
        return Ok(true);
    };
    let publisher = &context.publisher;
    let built = |status: crate::scan::DbStatus| parse(&status.built);
    let own = built(publisher.grype_db().await.map_err(|e| e.to_string())?);
    if own.is_some_and(|own| own >= wanted) {
        return Ok(true);
    }
    if let Some(status) = publisher.refresh_db().await.map_err(|e| e.to_string())? {
        context.stats.db_built(&status.built);
    }
    let own = built(publisher.grype_db().await.map_err(|e| e.to_string())?);
    Ok(own.is_some_and(|own| own >= wanted))
}

/// The longest single wait for an event's tag to show up in the registry (the waits
/// double from [`FIRST_TAG_WAIT`]: about 3 s in all).
const TAG_SETTLE: std::time::Duration = std::time::Duration::from_millis(1600);

/// The first wait for an event's tag: distribution links it a few milliseconds after its
/// event, so a short first wait saves most of a promoted image's time to a complete set.
const FIRST_TAG_WAIT: std::time::Duration = std::time::Duration::from_millis(25);

/// The job's tag, when the registry confirms it: a job fetched by tag has it; a tag that
/// came with a digest (from an event, which anyone allowed to send one can make up) is
/// looked up, and one that does not exist or points elsewhere is not recorded.
async fn confirmed_tag<'a>(
    client: &Client,
    job: &'a Job,
    digest: &crate::digest::Digest,
) -> Result<Option<&'a Tag>, String> {
    let Target::Pinned(tag, _) = &job.target else {
        return Ok(job.tag());
    };
    let mut wait = FIRST_TAG_WAIT;
    loop {
        let found = client
            .head_manifest(&job.repository, &Target::Tag(tag.clone()))
            .await
            .map_err(|e| e.to_string())?;
        match found {
            Some(d) if &d.digest == digest => return Ok(Some(tag)),
            // distribution sends its push event before it links the tag: give the
            // registry a moment before calling the tag made up.
            _ if wait <= TAG_SETTLE => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            found => {
                tracing::warn!(job = %job.key(), now = ?found.map(|d| d.digest.to_string()),
                    "the event's tag does not point at its digest in the registry; not recorded");
                return Ok(None);
            }
        }
    }
}

/// Publishes for `job`, counting what it attaches. A job that names a tag first adds
/// the tag's image to the release log, which also names the stream's previous release
/// for `first_seen`. Errors are strings: the queue logs them and retries.
pub async fn run(context: &JobContext, job: Job) -> Result<Outcome, String> {
    if let Some(wanted) = &job.db_built {
        if !has_db_of(context, wanted).await? {
            return Ok(Outcome::Deferred);
        }
    }
    let client = &context.client;
    let fetched = match client.get_manifest(&job.repository, &job.target).await {
        Ok(f) => f,
        // Deleted since the event: nothing to do, and nothing to retry.
        Err(e) if e.is_not_found() => {
            tracing::info!(job = %job.key(), "gone from the registry; skipped");
            return Ok(Outcome::Skipped);
        }
        Err(e) => return Err(e.to_string()),
    };
    if !is_image(&fetched.manifest) {
        tracing::debug!(job = %job.key(), "not an image (a referrer or an artifact); skipped");
        return Ok(Outcome::Skipped);
    }
    // The release is recorded while the sets are checked and copied: the publish waits
    // for it only when it makes a first Grype artifact, whose first_seen it names.
    let recorded = async {
        let Some(tag) = confirmed_tag(client, &job, &fetched.digest).await? else {
            return Ok((None, None));
        };
        let log = context
            .record_releases(
                &job.repository,
                &[(tag.clone(), fetched.descriptor())],
                false,
            )
            .await
            .map_err(|e| format!("recording the release: {e}"))?;
        let predecessor = log.and_then(|edit| edit.log().predecessor(&fetched.digest));
        Ok::<_, String>((Some(tag.clone()), predecessor))
    }
    .shared();
    let reference = Reference {
        registry: client.registry().to_string(),
        repository: job.repository.clone(),
        target: Target::Digest(fetched.digest.clone()),
    };
    let predecessor = recorded.clone().map(|r| r.map(|(_, p)| p));
    let (recorded, reports) = tokio::join!(
        recorded,
        context
            .publisher
            .publish_fetched(&reference, &fetched, predecessor)
    );
    let confirmed = recorded?.0;
    let reports = reports.map_err(|e| e.to_string())?;
    // A publish that returned did make every subject's set complete.
    context.note_complete(&reference.repository, reports.iter().map(|r| &r.digest));
    context.note_published(&reference.repository, confirmed.as_ref(), &fetched.digest);
    for report in &reports {
        for published in &report.published {
            context.stats.attached(published.format.as_str());
        }
        context.stats.reused(report.reused.len());
        context.stats.pruned(report.pruned.len());
    }
    context
        .stats
        .scanned_for(reports.iter().map(|r| r.scanner_seconds).sum());
    if reports
        .iter()
        .any(|r| !r.published.is_empty() || !r.reused.is_empty())
    {
        Ok(Outcome::Published)
    } else {
        Ok(Outcome::Complete)
    }
}
