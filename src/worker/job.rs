//! Running one job: make sure the target is an image (not a referrer or another
//! artifact), then publish whatever it lacks.

use super::queue::Outcome;
use super::stats::WorkerStats;
use super::Job;
use crate::artifact::media_types::{DOCKER_CONFIG, IN_TOTO_JSON, OCI_CONFIG};
use crate::oci::Manifest;
use crate::publish::Publisher;
use crate::reference::{Reference, Target};
use crate::registry::Client;

/// Whether a manifest is an image or an index of images, as opposed to a referrer
/// (refcat's own artifacts and signatures among them) or a non-image artifact.
pub fn is_image(manifest: &Manifest) -> bool {
    match manifest {
        // BuildKit's attestation manifests have an image config but only in-toto layers.
        Manifest::Image(m) => {
            m.subject.is_none()
                && [OCI_CONFIG, DOCKER_CONFIG].contains(&m.config.media_type.as_str())
                && !m.layers.iter().all(|l| l.media_type == IN_TOTO_JSON)
        }
        Manifest::Index(i) => i.subject.is_none(),
    }
}

/// Publishes for `job`, counting what it attaches in `stats`. Errors are strings: the
/// queue logs them and retries.
pub async fn run(
    client: &Client,
    publisher: &Publisher,
    stats: &WorkerStats,
    job: Job,
) -> Result<Outcome, String> {
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
    let reference = Reference {
        registry: client.registry().to_string(),
        repository: job.repository,
        target: Target::Digest(fetched.digest),
    };
    let reports = publisher
        .publish(&reference)
        .await
        .map_err(|e| e.to_string())?;
    for published in reports.iter().flat_map(|r| &r.published) {
        stats.attached(published.format.as_str());
    }
    if reports.iter().any(|r| !r.published.is_empty()) {
        Ok(Outcome::Published)
    } else {
        Ok(Outcome::Complete)
    }
}
