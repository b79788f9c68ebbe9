//! Catalog-wide documents the worker stores under a tag of its own in one repository
//! (`--aggregate-repository`): the vulnerability aggregate, and the repositories it
//! found. Each is an artifact with one JSON layer of its artifactType, signed.

use serde::de::DeserializeOwned;

use super::artifacts::layer_of;
use super::signatures::Trust;
use super::CatalogError;
use crate::artifact::annotations::CREATED;
use crate::digest::Digest;
use crate::oci::Manifest;
use crate::reference::{RepositoryName, Target};
use crate::registry::Client;

/// A stored document.
#[derive(Clone, Debug)]
pub struct StoredDocument<T> {
    /// The document.
    pub data: T,
    /// When it was made.
    pub created: Option<String>,
    /// Its artifact manifest.
    pub digest: Digest,
}

/// The document of `artifact_type` tagged `tag` in `repository`; `None` when there is
/// none, or when `trust` has keys and its signature does not verify with them (logged):
/// a forged document must not stand in for a signed one.
pub async fn read<T: DeserializeOwned>(
    client: &Client,
    repository: &RepositoryName,
    tag: &str,
    artifact_type: &str,
    trust: &Trust,
) -> Result<Option<StoredDocument<T>>, CatalogError> {
    let target = Target::Tag(tag.parse().expect("refcat's own tags are valid"));
    let fetched = match client.get_manifest(repository, &target).await {
        Ok(fetched) => fetched,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Manifest::Image(manifest) = &fetched.manifest else {
        return Ok(None);
    };
    if manifest.artifact_type.as_deref() != Some(artifact_type) {
        return Ok(None);
    }
    if trust.checks() {
        let verdict = trust.verdict(client, repository, &fetched.digest).await?;
        if !verdict.as_ref().is_some_and(|v| v.is_verified()) {
            tracing::warn!(%repository, tag, ?verdict, "a stored catalog document's signature does not verify; not used");
            return Ok(None);
        }
    }
    let data = layer_of(client, repository, &fetched.digest, manifest, artifact_type).await?;
    let parsed = serde_json::from_slice(&data)
        .map_err(|e| CatalogError::stored(fetched.digest.to_string(), e))?;
    Ok(Some(StoredDocument {
        data: parsed,
        created: manifest.annotations.get(CREATED).cloned(),
        digest: fetched.digest.clone(),
    }))
}
