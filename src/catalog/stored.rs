//! Catalog-wide documents the worker stores under a tag of its own in one repository
//! (`--aggregate-repository`): the vulnerability aggregate, and the repositories it
//! found. Each is an artifact with one JSON layer of its artifactType, signed.

use serde::de::DeserializeOwned;

use super::CatalogError;
use crate::artifact::annotations::CREATED;
use crate::reference::RepositoryName;
use crate::registry::Client;
use crate::trust::{Shown, Trust};

/// A stored document, as `trust` lets a view show it.
#[derive(Clone, Debug)]
pub struct StoredDocument<T> {
    /// The document, with where it came from and whether it verified.
    pub document: Shown<T>,
    /// When it was made, as it says.
    pub created: Option<String>,
}

/// The document of `artifact_type` tagged `tag` in `repository`; `None` when there is
/// none, or when `trust` checks signatures and its signature does not verify (logged):
/// a forged document must not stand in for a signed one.
pub async fn read<T: DeserializeOwned>(
    client: &Client,
    repository: &RepositoryName,
    tag: &str,
    artifact_type: &str,
    trust: &Trust,
) -> Result<Option<StoredDocument<T>>, CatalogError> {
    let tag = tag.parse().expect("refcat's own tags are valid");
    let Some(artifact) = trust
        .document(client, repository, &tag, artifact_type)
        .await?
    else {
        return Ok(None);
    };
    let created = artifact.get().annotation(CREATED).map(str::to_string);
    let data = artifact
        .layer(client, artifact_type)
        .await?
        .ok_or_else(|| {
            CatalogError::stored(artifact.artifact().to_string(), "no document layer")
        })?;
    let document = data
        .try_map(|d| serde_json::from_slice::<T>(&d))
        .map_err(|e| CatalogError::stored(artifact.artifact().to_string(), e))?;
    Ok(Some(StoredDocument { document, created }))
}
