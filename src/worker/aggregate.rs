//! Keeps the stored catalog aggregate current: once jobs have published or a walk has
//! ended, and the queue is idle, the aggregate is computed again and, when it differs
//! from the stored one, stored as a signed artifact tagged `refcat-aggregate`, so that
//! `refcat serve` answers `/v1/vulnerabilities` with one fetch.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::job::JobContext;
use super::queue::Queue;
use crate::artifact::annotations::CREATED;
use crate::artifact::media_types::CATALOG_AGGREGATE;
use crate::artifact::{now_rfc3339, ArtifactBuilder, ArtifactLayer};
use crate::catalog::aggregate;
use crate::catalog::signatures::Trust;
use crate::reference::{RepositoryName, AGGREGATE_TAG};

/// Where and how the aggregate is stored.
#[derive(Clone, Debug)]
pub struct AggregateTarget {
    /// The repository that holds it (left out of the aggregate itself).
    pub repository: RepositoryName,
    /// The tag that summarises a repository when it has it, as `refcat serve
    /// --default-tag` takes it.
    pub default_tag: Option<String>,
}

/// Stores the aggregate when it changed; whether it did.
pub async fn store(context: &JobContext, target: &AggregateTarget) -> Result<bool, String> {
    let client = &context.client;
    let unchecked = Trust::default();
    let data = aggregate::compute(
        client,
        target.default_tag.as_deref(),
        &unchecked,
        &context.repositories,
    )
    .await
    .map_err(|e| format!("computing the aggregate: {e}"))?;
    let stored = aggregate::stored(client, &target.repository, &unchecked)
        .await
        .map_err(|e| format!("reading the stored aggregate: {e}"))?;
    if stored.as_ref().is_some_and(|current| current.data == data) {
        return Ok(false);
    }
    let artifact = ArtifactBuilder::new(CATALOG_AGGREGATE)
        .layer(ArtifactLayer {
            media_type: CATALOG_AGGREGATE.into(),
            data: serde_json::to_vec(&data)
                .expect("an aggregate serializes")
                .into(),
            title: "vulnerabilities.json".into(),
        })
        .annotation(CREATED, now_rfc3339())
        .build();
    let tag = AGGREGATE_TAG.parse().expect("the aggregate tag is valid");
    let previous = stored.as_ref().map(|current| &current.digest);
    context
        .publisher
        .replace_tagged(&target.repository, tag, artifact, previous)
        .await
        .map_err(|e| format!("storing the aggregate: {e}"))?;
    Ok(true)
}

/// Stores the aggregate after each `changed` notification, once `queue` is idle.
pub async fn keep_current(
    context: Arc<JobContext>,
    queue: Queue,
    target: AggregateTarget,
    changed: Arc<Notify>,
) {
    loop {
        changed.notified().await;
        while queue.depth() + queue.running() > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        match store(&context, &target).await {
            Ok(true) => {
                tracing::info!(repository = %target.repository, "stored the catalog aggregate")
            }
            Ok(false) => tracing::debug!("the catalog aggregate is unchanged"),
            Err(e) => {
                tracing::error!(error = %e, "the catalog aggregate was not stored; the next change retries")
            }
        }
    }
}
