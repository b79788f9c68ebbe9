//! Reading refcat's artifacts back: the newest of a format on a platform manifest, and
//! the layers it holds.

use bytes::Bytes;

use super::existing::{Existing, Format, Stored};
use super::signatures::{Trust, Verdict};
use super::CatalogError;
use crate::digest::Digest;
use crate::media_types::{EMPTY_JSON, SYFT_JSON, SYFT_JSON_GZIP};
use crate::oci::{Descriptor, ImageManifest, Manifest};
use crate::reference::{RepositoryName, Target};
use crate::registry::Client;

/// Largest layer a view reads (Syft JSON of big images runs to tens of MB).
const MAX_LAYER_BYTES: u64 = 512 * 1024 * 1024;

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

/// A referrer's artifactType. Some registries list the config media type in its place;
/// the empty config's type says nothing, so then the manifest itself is read.
pub async fn artifact_type(
    client: &Client,
    repository: &RepositoryName,
    referrer: &Descriptor,
) -> Result<Option<String>, CatalogError> {
    match referrer.artifact_type.as_deref() {
        Some(EMPTY_JSON) => Ok(manifest(client, repository, referrer).await?.artifact_type),
        listed => Ok(listed.map(str::to_string)),
    }
}

/// The bytes of the artifact's first layer of `media_type` (Syft JSON in either form
/// counts as Syft JSON and comes back decompressed).
pub async fn layer(
    client: &Client,
    repository: &RepositoryName,
    artifact: &Stored,
    media_type: &str,
) -> Result<Bytes, CatalogError> {
    layer_of(
        client,
        repository,
        artifact.digest(),
        &artifact.manifest,
        media_type,
    )
    .await
}

/// [`layer`] of an artifact whose manifest the caller has already fetched.
pub async fn layer_of(
    client: &Client,
    repository: &RepositoryName,
    artifact: &Digest,
    manifest: &ImageManifest,
    media_type: &str,
) -> Result<Bytes, CatalogError> {
    let layer = layer_descriptor(manifest, media_type).ok_or_else(|| {
        CatalogError::stored(artifact.to_string(), format!("no {media_type} layer"))
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

/// The artifact's first layer of `media_type` (Syft JSON in either form counts).
fn layer_descriptor<'a>(manifest: &'a ImageManifest, media_type: &str) -> Option<&'a Descriptor> {
    let wanted = |m: &str| m == media_type || (media_type == SYFT_JSON && m == SYFT_JSON_GZIP);
    manifest.layers.iter().find(|l| wanted(&l.media_type))
}

/// Fetches the layers of `media_types` of `artifact` into the client's cache while the
/// caller checks its signature, so that a view allowed to read them afterwards finds
/// them there instead of waiting for them after the verdict. Nothing is parsed or shown
/// here, and failures are left to that read. A client without a cache skips it.
pub async fn prefetch(
    client: &Client,
    repository: &RepositoryName,
    artifact: Option<&Stored>,
    media_types: &[&str],
) {
    let Some(artifact) = artifact.filter(|_| client.caches()) else {
        return;
    };
    let layers = media_types
        .iter()
        .filter_map(|m| layer_descriptor(&artifact.manifest, m));
    futures_util::future::join_all(
        layers.map(|l| client.get_blob(repository, &l.digest, Some(MAX_LAYER_BYTES))),
    )
    .await;
}

/// An artifact a view reads, with its signature verdict when keys are configured.
#[derive(Clone, Debug)]
pub struct Trusted {
    /// The artifact, as read from its manifest.
    pub artifact: Stored,
    /// Its signature verdict; `None` when the catalog has no keys.
    pub verdict: Option<Verdict>,
}

impl Trusted {
    /// Whether a view may show what the artifact says: always without keys; with keys,
    /// only when its signature verifies. Otherwise a view names the artifact and its
    /// verdict, and shows none of its numbers.
    pub fn readable(&self) -> bool {
        self.verdict.as_ref().is_none_or(Verdict::is_verified)
    }

    /// The artifact, when a view may show what it says.
    pub fn content(&self) -> Option<&Stored> {
        self.readable().then_some(&self.artifact)
    }
}

/// The artifact of `format` a view shows. Without keys, the newest. With keys, the
/// newest whose signature verifies, so a newer forgery cannot hide a signed result;
/// when none verifies, the newest with its verdict (or nothing, with `require`).
pub async fn newest_trusted(
    client: &Client,
    repository: &RepositoryName,
    existing: &Existing,
    format: Format,
    trust: &Trust,
) -> Result<Option<Trusted>, CatalogError> {
    let candidates = existing.of_format(format);
    let mut first_failure = None;
    for stored in candidates {
        let verdict = trust.verdict(client, repository, stored.digest()).await?;
        let trusted = Trusted {
            artifact: stored.clone(),
            verdict,
        };
        if trusted.readable() {
            return Ok(Some(trusted));
        }
        first_failure.get_or_insert(trusted);
    }
    Ok(first_failure.filter(|_| !trust.requires()))
}

/// A stored file of refcat's, as `oras pull` writes it: the layer's bytes exactly as
/// stored, under the name in its title annotation.
#[derive(Clone, Debug)]
pub struct StoredFile {
    /// `org.opencontainers.image.title`.
    pub name: String,
    /// The layer's media type.
    pub media_type: String,
    /// The bytes, digest-checked.
    pub bytes: Bytes,
}

/// The first layer of the newest artifact of `format` on platform manifest `digest`
/// that a view may show (see [`newest_trusted`]); `None` when there is none.
pub async fn stored_file(
    client: &Client,
    repository: &RepositoryName,
    digest: &Digest,
    format: Format,
    trust: &Trust,
) -> Result<Option<StoredFile>, CatalogError> {
    let found = Existing::read(client, repository, digest).await?;
    let trusted = newest_trusted(client, repository, &found, format, trust).await?;
    let Some(artifact) = trusted.as_ref().and_then(Trusted::content) else {
        return Ok(None);
    };
    let Some(layer) = artifact.manifest.layers.first() else {
        return Ok(None);
    };
    let bytes = client
        .get_blob(repository, &layer.digest, Some(MAX_LAYER_BYTES))
        .await?;
    let name = layer
        .annotations
        .get(crate::artifact::annotations::TITLE)
        .cloned()
        .unwrap_or_else(|| format!("{}.json", format.as_str()));
    Ok(Some(StoredFile {
        name,
        media_type: layer.media_type.clone(),
        bytes,
    }))
}
