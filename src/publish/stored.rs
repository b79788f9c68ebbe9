//! Reading back what refcat stored earlier: the Syft JSON grype runs on again, and the
//! vulnerability records `first_seen` carries over from.

use bytes::Bytes;

use super::record::VulnerabilityRecord;
use super::PublishError;
use crate::artifact::annotations::PACKAGES;
use crate::artifact::media_types::VULNERABILITY_RECORD;
use crate::catalog::existing::Existing;
use crate::catalog::platforms::platform_manifests;
use crate::digest::Digest;
use crate::oci::{Descriptor, Manifest, Platform};
use crate::reference::{Reference, Target};
use crate::registry::Client;

/// Records are small; anything bigger is not one.
const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;

/// The layers of a stored artifact manifest.
async fn layers(
    client: &Client,
    reference: &Reference,
    artifact: &Descriptor,
) -> Result<Vec<Descriptor>, PublishError> {
    let fetched = client
        .get_manifest(
            &reference.repository,
            &Target::Digest(artifact.digest.clone()),
        )
        .await?;
    match fetched.manifest {
        Manifest::Image(m) => Ok(m.layers),
        Manifest::Index(_) => Err(PublishError::Stored(format!(
            "{} is an index, not an artifact manifest",
            artifact.digest
        ))),
    }
}

/// The newest stored Syft JSON and its package count, for re-running grype alone.
pub async fn syft_json(
    client: &Client,
    reference: &Reference,
    existing: &Existing,
) -> Result<(Bytes, usize), PublishError> {
    let newest = existing
        .syft
        .first()
        .ok_or_else(|| PublishError::Stored("no Syft JSON artifact to run grype on".into()))?;
    let layer = layers(client, reference, newest)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| PublishError::Stored(format!("{} has no layer", newest.digest)))?;
    let data = client
        .get_blob(&reference.repository, &layer.digest, None)
        .await?;
    let json = crate::artifact::compression::syft_json_from_layer(&layer.media_type, data)
        .map_err(|e| PublishError::Stored(e.to_string()))?;
    let packages = newest
        .annotations
        .get(PACKAGES)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok((json, packages))
}

/// The record of the newest Grype artifact in `existing`. A record that cannot be read
/// only costs the carried-over dates, so it is logged, not fatal.
pub async fn newest_record(
    client: &Client,
    reference: &Reference,
    existing: &Existing,
) -> Option<VulnerabilityRecord> {
    let newest = existing.grype.first()?;
    let result = async {
        let layer = layers(client, reference, newest)
            .await?
            .into_iter()
            .find(|l| l.media_type == VULNERABILITY_RECORD)
            .ok_or_else(|| PublishError::Stored("no record layer".into()))?;
        let data = client
            .get_blob(&reference.repository, &layer.digest, Some(MAX_RECORD_BYTES))
            .await?;
        serde_json::from_slice::<VulnerabilityRecord>(&data)
            .map_err(|e| PublishError::Stored(format!("the record does not parse: {e}")))
    }
    .await;
    match result {
        Ok(record) => Some(record),
        Err(e) => {
            tracing::warn!(artifact = %newest.digest, error = %e, "previous vulnerability record unreadable; first_seen starts over");
            None
        }
    }
}

/// The newest record on the `platform` manifest of `release` (the previous release of
/// a stream), for a new digest's `first_seen`. Anything unreadable or absent is `None`:
/// the dates then start over, which is logged.
pub async fn release_record(
    client: &Client,
    reference: &Reference,
    release: &Digest,
    platform: &Platform,
) -> Option<VulnerabilityRecord> {
    let previous = reference.with_digest(release.clone());
    // A release without this platform (one added since) has nothing to carry over.
    let subject = match platform_manifests(client, &previous, Some(platform)).await {
        Ok(subjects) => subjects.into_iter().next()?,
        Err(e) => {
            tracing::info!(release = %release, error = %e, "nothing to carry first_seen over from");
            return None;
        }
    };
    let referrers = client
        .referrers(&reference.repository, &subject.descriptor.digest, None)
        .await
        .inspect_err(|e| tracing::warn!(release = %release, error = %e, "referrers of the previous release unreadable; first_seen starts over"))
        .ok()?;
    newest_record(client, reference, &Existing::from_referrers(&referrers)).await
}
