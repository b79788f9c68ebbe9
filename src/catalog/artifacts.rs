//! Reading refcat's artifacts back for a view: the newest of a format on a platform
//! manifest that [`Trust`] lets the view show, and the manifests of other referrers.

use bytes::Bytes;

use super::CatalogError;
use crate::artifact::Format;
use crate::digest::Digest;
use crate::media_types::EMPTY_JSON;
use crate::oci::{Descriptor, ImageManifest, Manifest};
use crate::reference::{RepositoryName, Target};
use crate::registry::Client;
use crate::trust::{Candidates, Judged, Shown, Trust};

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

/// Per format of `formats`, the artifact a view shows on platform manifest `subject`
/// (see [`Trust::newest`]), from one referrers call.
pub async fn newest(
    client: &Client,
    repository: &RepositoryName,
    subject: &Digest,
    formats: &[Format],
    trust: &Trust,
) -> Result<Vec<Option<Judged>>, CatalogError> {
    let candidates = Candidates::read(client, repository, subject, formats, trust).await?;
    let mut out = Vec::with_capacity(formats.len());
    for format in formats {
        out.push(
            trust
                .newest(client, repository, candidates.of(*format))
                .await?,
        );
    }
    Ok(out)
}

/// The stored file of the newest artifact of `format` on platform manifest `digest` that
/// a view may show: the scanner's bytes exactly as stored (a gzip Syft JSON comes back
/// decompressed); `None` when there is none.
pub async fn stored_file(
    client: &Client,
    repository: &RepositoryName,
    digest: &Digest,
    format: Format,
    trust: &Trust,
) -> Result<Option<Shown<Bytes>>, CatalogError> {
    let judged = newest(client, repository, digest, &[format], trust)
        .await?
        .pop()
        .flatten();
    let Some(content) = judged.and_then(Judged::into_content) else {
        return Ok(None);
    };
    Ok(content.layer(client, format.artifact_type()).await?)
}
