//! Reading back what refcat stored earlier, verified with its own key: the Syft JSON
//! grype runs on again, and the vulnerability records `first_seen` carries over from.

use bytes::Bytes;

use super::existing::Existing;
use super::PublishError;
use crate::artifact::annotations::PACKAGES;
use crate::artifact::Format;
use crate::catalog::platforms::{platform_manifests, PlatformManifest};
use crate::digest::Digest;
use crate::media_types::{SYFT_JSON, VULNERABILITY_RECORD};
use crate::records::VulnerabilityRecord;
use crate::reference::Reference;
use crate::registry::Client;
use crate::trust::{Trust, Verified};

/// The newest own Syft JSON and its package count, for re-running grype alone.
pub async fn syft_json(
    client: &Client,
    existing: &Existing,
) -> Result<(Verified<Bytes>, usize), PublishError> {
    let newest = existing
        .syft
        .first()
        .ok_or_else(|| PublishError::Stored("no Syft JSON artifact to run grype on".into()))?;
    let json = newest.layer(client, SYFT_JSON).await?.ok_or_else(|| {
        PublishError::Stored(format!(
            "the Syft artifact {} has no Syft JSON layer",
            newest.proof().artifact()
        ))
    })?;
    let packages = newest
        .get()
        .annotation(PACKAGES)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok((json, packages))
}

/// The record of the newest own Grype artifact in `existing`. A record that cannot be
/// read only costs the carried-over dates, so it is logged, not fatal.
pub async fn newest_record(
    client: &Client,
    existing: &Existing,
) -> Option<Verified<VulnerabilityRecord>> {
    let newest = existing.grype.first()?;
    let result = async {
        let data = newest
            .layer(client, VULNERABILITY_RECORD)
            .await?
            .ok_or_else(|| PublishError::Stored("no record layer".into()))?;
        data.try_map(|d| serde_json::from_slice::<VulnerabilityRecord>(&d))
            .map_err(|e| PublishError::Stored(format!("the record does not parse: {e}")))
    }
    .await;
    match result {
        Ok(record) => Some(record),
        Err(e) => {
            tracing::warn!(artifact = %newest.proof().artifact(), error = %e, "previous vulnerability record unreadable; first_seen starts over");
            None
        }
    }
}

/// The platform manifests of `release` (the previous release of a stream), for new
/// digests' `first_seen`. One that cannot be read only costs the carried-over dates.
pub async fn release_platforms(
    client: &Client,
    reference: &Reference,
    release: &Digest,
) -> Vec<PlatformManifest> {
    let previous = reference.with_digest(release.clone());
    platform_manifests(client, &previous, None)
        .await
        .inspect_err(|e| tracing::warn!(%release, error = %e, "previous release unreadable; first_seen starts over"))
        .unwrap_or_default()
}

/// The newest record on `platform_manifest` of the previous release, among the
/// artifacts that verify with `own` (the publisher's key).
pub async fn release_record(
    client: &Client,
    reference: &Reference,
    platform_manifest: &PlatformManifest,
    own: &Trust,
) -> Option<Verified<VulnerabilityRecord>> {
    let digest = &platform_manifest.descriptor.digest;
    let repository = &reference.repository;
    let found = Existing::owned(client, repository, digest, own, &[Format::GrypeJson], false)
        .await
        .inspect_err(|e| tracing::warn!(%digest, error = %e, "referrers of the previous release unreadable; first_seen starts over"))
        .ok()?;
    newest_record(client, &found).await
}
