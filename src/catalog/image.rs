//! The platform images behind a tag or digest: each platform manifest with its parsed
//! manifest and config, fetched concurrently.

use futures_util::future::try_join_all;

use super::platforms::{resolve, PlatformManifest};
use super::CatalogError;
use crate::digest::Digest;
use crate::oci::{Descriptor, ImageConfig, ImageManifest, Manifest};
use crate::reference::{Reference, RepositoryName, Target};
use crate::registry::Client;

/// Image configs are small; anything bigger is not one.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// One platform's image: manifest and config.
#[derive(Clone, Debug)]
pub struct PlatformImage {
    /// The platform manifest.
    pub subject: PlatformManifest,
    /// Its manifest.
    pub manifest: ImageManifest,
    /// Its config.
    pub config: ImageConfig,
}

/// The descriptor of what `reference` names, and every platform image behind it.
pub async fn platform_images(
    client: &Client,
    reference: &Reference,
) -> Result<(Descriptor, Vec<PlatformImage>), CatalogError> {
    let (top, subjects) = resolve(client, reference, None).await?;
    let images = try_join_all(subjects.into_iter().map(|subject| async move {
        let (manifest, config) =
            manifest_and_config(client, &reference.repository, &subject.descriptor.digest).await?;
        Ok::<_, CatalogError>(PlatformImage {
            subject,
            manifest,
            config,
        })
    }))
    .await?;
    Ok((top, images))
}

/// The manifest and config of the platform manifest `digest`.
pub async fn manifest_and_config(
    client: &Client,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<(ImageManifest, ImageConfig), CatalogError> {
    let manifest = match client
        .get_manifest(repository, &Target::Digest(digest.clone()))
        .await?
        .manifest
    {
        Manifest::Image(m) => m,
        Manifest::Index(_) => {
            return Err(CatalogError::stored(
                digest.to_string(),
                "a platform manifest that is an index",
            ))
        }
    };
    let bytes = client
        .get_blob(repository, &manifest.config.digest, Some(MAX_CONFIG_BYTES))
        .await?;
    let config = serde_json::from_slice(&bytes)
        .map_err(|e| CatalogError::stored(manifest.config.digest.to_string(), e))?;
    Ok((manifest, config))
}
