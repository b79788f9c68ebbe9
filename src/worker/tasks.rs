//! The worker's long-running tasks besides running jobs: the reconcile walk on its
//! interval, the Grype DB watcher, and the reader of zot's events on the broker. Among
//! replicas sharing a broker, one walks per interval and one fans out the re-scans of a
//! new Grype DB; the others leave it to that one.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::exposure::{self, ExposureMetrics};
use super::intake::{enqueue, Intake};
use super::job::JobContext;
use super::queue::{Enqueued, JobQueue};
use super::{events, reconcile};
use crate::digest::Digest;
use crate::reference::{RepositoryName, Tag};

/// One JSON line per active vulnerability on each tagged image to standard output, and
/// the exposure metrics. An image is taken from its repository's signed summary, which
/// the walk has just brought up to date; one the summary lacks (or without summaries) is
/// read, once however many tags name it, a few at a time.
async fn report_exposure(context: &JobContext, image_tags: &[(RepositoryName, Tag, Digest)]) {
    let now = time::OffsetDateTime::now_utc();
    let mut images: BTreeMap<&RepositoryName, BTreeMap<String, (&Digest, Vec<Tag>)>> =
        BTreeMap::new();
    for (repository, tag, digest) in image_tags {
        images
            .entry(repository)
            .or_default()
            .entry(digest.to_string())
            .or_insert_with(|| (digest, Vec::new()))
            .1
            .push(tag.clone());
    }
    let mut all = Vec::new();
    let mut unread = Vec::new();
    let db_built = context.publisher.grype_db().await.map(|s| s.built).ok();
    for (repository, images) in images {
        let summary = context.stored_summary(repository).await.ok().flatten();
        for (key, (digest, tags)) in images {
            let summarised = summary
                .as_ref()
                .and_then(|s| s.get().images.get(&key))
                .filter(|image| db_built.as_deref().is_some_and(|db| image.complete(db)));
            match summarised {
                Some(image) => all.extend(exposure::of_summary(image, repository, &tags, now)),
                None => unread.push((repository, digest, tags)),
            }
        }
    }
    all.extend(read_exposures(context, unread, now).await);
    tracing::info!(
        tags = image_tags.len(),
        active = all.len(),
        "exposure at this walk"
    );
    let mut stdout = std::io::stdout().lock();
    for e in &all {
        let _ = writeln!(
            stdout,
            "{}",
            serde_json::to_string(e).expect("an exposure serializes")
        );
    }
    context.stats.exposed(ExposureMetrics::new(&all));
}

/// The exposures of images no summary holds, read eight at a time; an image that cannot
/// be read is logged and left out.
async fn read_exposures<'a>(
    context: &'a JobContext,
    unread: Vec<(&'a RepositoryName, &'a Digest, Vec<Tag>)>,
    now: time::OffsetDateTime,
) -> Vec<exposure::Exposure> {
    let own = context.publisher.own_trust();
    let mut read = Vec::with_capacity(unread.len());
    for chunk in unread.chunks(8) {
        let reads = chunk.iter().map(|(repository, digest, tags)| async move {
            let found =
                exposure::of_image(&context.client, own, repository, digest, tags, now).await;
            (*repository, *digest, found)
        });
        read.extend(futures_util::future::join_all(reads).await);
    }
    let mut all = Vec::new();
    for (repository, digest, found) in read {
        match found {
            Ok(found) => all.extend(found),
            Err(e) => {
                tracing::warn!(%repository, %digest, error = %e, "cannot read the vulnerabilities")
            }
        }
    }
    all
}

/// Checks the Grype DB every `interval`; a change asks for a walk at once. Of replicas
/// sharing a broker, the first to see a DB build fans out its re-scans.
pub async fn watch_db(context: Arc<JobContext>, interval: Duration, walk_now: Arc<Notify>) {
    let (publisher, stats) = (&context.publisher, &context.stats);
    match publisher.grype_db().await {
        Ok(status) => stats.db_built(&status.built),
        Err(e) => tracing::error!(error = %e, "cannot read the Grype DB status"),
    }
    if interval.is_zero() {
        return;
    }
    loop {
        tokio::time::sleep(interval).await;
        let status = match publisher.refresh_db().await {
            Ok(Some(status)) => status,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the Grype DB status; next check retries");
                continue;
            }
        };
        stats.db_built(&status.built);
        let ours = match &context.broker {
            None => true,
            Some(broker) => match broker
                .schedule()
                .claim_once(&format!("rescan.{}", status.built))
                .await
            {
                Ok(won) => won,
                Err(e) => {
                    // Better twice than never: the jobs are deduplicated anyway.
                    tracing::warn!(error = %e, "cannot claim the re-scan with the broker; walking");
                    true
                }
            },
        };
        if ours {
            tracing::info!(built = %status.built, schema = %status.schema_version, "the Grype DB changed; re-scanning every image with it");
            walk_now.notify_one();
        } else {
            tracing::info!(built = %status.built, "the Grype DB changed; another replica fans out the re-scans");
        }
    }
}

/// Whether this replica walks now: always alone; with a broker, when no replica walked
/// within the interval and this one's claim wins (a forced walk, after a new DB, always).
async fn walk_is_ours(context: &JobContext, interval: Duration, forced: bool) -> bool {
    let Some(broker) = &context.broker else {
        return true;
    };
    if forced {
        return true;
    }
    match broker.schedule().claim_every("reconcile", interval).await {
        Ok(won) => won,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim the reconcile walk with the broker; skipping it");
            false
        }
    }
}

/// A walk at start, then one every `interval` (none more when it is zero) or when
/// `walk_now` is notified.
pub async fn reconcile_loop(
    context: Arc<JobContext>,
    queue: JobQueue,
    interval: Duration,
    walk_now: Arc<Notify>,
    walked: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut forced = false;
    loop {
        if walk_is_ours(&context, interval, forced).await {
            walk(&context, &queue).await;
            walked.notify_one();
        }
        let every = async {
            if interval.is_zero() {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(interval).await
            }
        };
        tokio::select! {
            _ = every => forced = false,
            _ = walk_now.notified() => forced = true,
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// One walk, its jobs queued as they are found.
async fn walk(context: &JobContext, queue: &JobQueue) {
    context.stats.walked();
    let (found, mut jobs) = tokio::sync::mpsc::unbounded_channel();
    let pushing = tokio::spawn({
        let queue = queue.clone();
        async move {
            let mut queued = 0;
            while let Some(job) = jobs.recv().await {
                queued += usize::from(queue.push(job).await == Enqueued::Added);
            }
            queued
        }
    });
    let walked = reconcile::walk(
        context,
        |_| {},
        |job| {
            let _ = found.send(job);
        },
    )
    .await;
    drop(found);
    let queued = pushing.await.unwrap_or_default();
    match walked {
        Ok(walk) => {
            tracing::info!(
                checked = walk.checked,
                queued,
                errors = walk.errors.len(),
                "reconcile walk done"
            );
            for (name, error) in walk.errors {
                tracing::warn!(%name, %error, "reconcile could not check this; next walk retries");
            }
            if let Some((globs, refusal)) = walk.unexpanded {
                let globs: Vec<String> = globs.iter().map(ToString::to_string).collect();
                tracing::warn!(globs = %globs.join(", "), %refusal,
                    "cannot expand these without the registry's _catalog: only repositories named by --repository or by webhooks are walked");
            }
            report_exposure(context, &walk.image_tags).await;
        }
        Err(e) => tracing::error!(error = %e, "reconcile walk failed; next walk retries"),
    }
}

/// Reads zot's CloudEvents from the broker's events stream (zot's NATS sink) and
/// queues their jobs; an event is acked once its jobs are on the jobs stream, and handed
/// back when the queue did not take them.
pub async fn read_events(intake: Intake, mut stopped: watch::Receiver<bool>) {
    let Some(stream) = intake
        .context
        .broker
        .as_ref()
        .and_then(|b| b.events())
        .cloned()
    else {
        return;
    };
    loop {
        let fetched = tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            fetched = stream.fetch(16) => fetched,
        };
        let deliveries = match fetched {
            Ok(deliveries) => deliveries,
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch events from the broker; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for delivery in deliveries {
            let parsed = events::parse(
                Some("application/cloudevents+json"),
                None,
                &delivery.payload,
            );
            let settled = match parsed {
                Err(e) => {
                    tracing::warn!("an event on the broker was not understood, dropped: {e}");
                    delivery.ack().await
                }
                Ok(parsed) => match enqueue(&intake, parsed).await {
                    summary if summary.refused > 0 => {
                        delivery.retry_after(Duration::from_secs(5)).await
                    }
                    _ => delivery.ack().await,
                },
            };
            if let Err(e) = settled {
                tracing::warn!(error = %e, "an event could not be settled with the broker");
            }
        }
    }
}
