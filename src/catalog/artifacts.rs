//! Reading refcat's artifacts back: the newest of a format on a platform manifest, and
//! the layers it holds.

use bytes::Bytes;

use super::existing::{Existing, Format};
use super::CatalogError;
use crate::artifact::media_types::{SYFT_JSON, SYFT_JSON_GZIP};
use crate::oci::{Descriptor, ImageManifest, Manifest};
use crate::reference::{RepositoryName, Target};
use crate::registry::Client;

/// Largest layer a view reads (Syft JSON of big images runs to tens of MB).
const MAX_LAYER_BYTES: u64 = 512 * 1024 * 1024;

/// refcat's artifacts on `subject`, sorted into formats, newest first.
pub async fn existing(
    client: &Client,
    repository: &RepositoryName,
    subject: &crate::digest::Digest,
) -> Result<Existing, CatalogError> {
    let referrers = client.referrers(repository, subject, None).await?;
    Ok(Existing::from_referrers(&referrers))
}

/// The image manifest of an artifact.
pub async fn manifest(
    client: &Client,
    repository: &RepositoryName,
    artifact: &Descriptor,
) -> Result<ImageManifest, CatalogError> {
    match client
        .get_manifest(repository, &Target::Digest(artifact.digest.clone()))
        .await?
        .manifest
    {
        Manifest::Image(m) => Ok(m),
        Manifest::Index(_) => Err(CatalogError::stored(
            artifact.digest.to_string(),
            "an index where an artifact manifest was expected",
        )),
    }
}

/// The bytes of the artifact's first layer of `media_type` (Syft JSON in either form
/// counts as Syft JSON and comes back decompressed).
pub async fn layer(
    client: &Client,
    repository: &RepositoryName,
    artifact: &Descriptor,
    media_type: &str,
) -> Result<Bytes, CatalogError> {
    let manifest = manifest(client, repository, artifact).await?;
    let wanted = |m: &str| m == media_type || (media_type == SYFT_JSON && m == SYFT_JSON_GZIP);
    let layer = manifest
        .layers
        .iter()
        .find(|l| wanted(&l.media_type))
        .ok_or_else(|| {
            CatalogError::stored(
                artifact.digest.to_string(),
                format!("no {media_type} layer"),
            )
        })?;
    let data = client
        .get_blob(repository, &layer.digest, Some(MAX_LAYER_BYTES))
        .await?;
    if layer.media_type == SYFT_JSON_GZIP {
        return crate::artifact::compression::syft_json_from_layer(&layer.media_type, data)
            .map_err(|e| CatalogError::stored(layer.digest.to_string(), e));
    }
    Ok(data)
}

/// The newest artifact of `format`, if any.
pub fn newest(existing: &Existing, format: Format) -> Option<&Descriptor> {
    match format {
        Format::SyftJson => existing.syft.first(),
        Format::SpdxJson => existing.spdx.first(),
        Format::GrypeJson => existing.grype.first(),
    }
}
