//! The layers of an artifact whose manifest was judged: read by the digest its manifest
//! names, no larger than the size it states, and carrying the artifact's proof on.

use bytes::Bytes;

use super::{Candidate, Shown, Verified};
use crate::media_types::{SYFT_JSON, SYFT_JSON_GZIP};
use crate::oci::Descriptor;
use crate::registry::{Client, RegistryError};

/// Largest layer refcat reads back (a Syft JSON of a big image runs to tens of MB).
pub const MAX_LAYER_BYTES: u64 = 512 * 1024 * 1024;

/// Why an artifact's content could not be read.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ContentError {
    /// The registry failed or refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The content is not what refcat writes.
    #[error("{what}: {reason}")]
    Stored {
        /// Which artifact or layer.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ContentError {
    fn stored(what: impl ToString, reason: impl ToString) -> Self {
        ContentError::Stored {
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// The first layer of `media_type` (Syft JSON in either form counts as Syft JSON).
fn layer_descriptor<'a>(candidate: &'a Candidate, media_type: &str) -> Option<&'a Descriptor> {
    let wanted = |m: &str| m == media_type || (media_type == SYFT_JSON && m == SYFT_JSON_GZIP);
    candidate
        .manifest()
        .layers
        .iter()
        .find(|l| wanted(&l.media_type))
}

/// Fetches `layer`, bounded by the size the (judged) manifest states, and decompresses a
/// gzip Syft JSON on a blocking thread: inflating tens of MB must not hold up the
/// runtime that serves every other request.
async fn read(
    client: &Client,
    candidate: &Candidate,
    repository: &crate::reference::RepositoryName,
    layer: &Descriptor,
) -> Result<Bytes, ContentError> {
    if layer.size > MAX_LAYER_BYTES {
        return Err(ContentError::stored(
            &layer.digest,
            format!(
                "a layer of {} bytes (at most {MAX_LAYER_BYTES} are read)",
                layer.size
            ),
        ));
    }
    let data = client
        .get_blob(repository, &layer.digest, Some(layer.size))
        .await?;
    if layer.media_type != SYFT_JSON_GZIP {
        return Ok(data);
    }
    inflate(data)
        .await
        .map_err(|e| ContentError::stored(format!("{} ({})", layer.digest, candidate.digest()), e))
}

/// A gzip Syft JSON, inflated on a blocking thread: tens of MB of inflating must not
/// hold up the runtime that serves every other request.
async fn inflate(data: Bytes) -> Result<Bytes, String> {
    tokio::task::spawn_blocking(move || {
        crate::artifact::compression::syft_json_from_layer(SYFT_JSON_GZIP, data)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

impl Shown<Candidate> {
    /// The bytes of the artifact's first layer of `media_type` (Syft JSON in either form
    /// counts as Syft JSON and comes back decompressed), shown as the artifact is;
    /// `None` when it has no such layer.
    pub async fn layer(
        &self,
        client: &Client,
        media_type: &str,
    ) -> Result<Option<Shown<Bytes>>, ContentError> {
        let Some(layer) = layer_descriptor(self.get(), media_type) else {
            return Ok(None);
        };
        let data = read(client, self.get(), self.origin().repository(), layer).await?;
        Ok(Some(self.with(data)))
    }

    /// The layer's descriptor, for a view that names the file (its title, media type).
    pub fn layer_descriptor(&self, media_type: &str) -> Option<&Descriptor> {
        layer_descriptor(self.get(), media_type)
    }
}

impl Verified<Candidate> {
    /// [`Shown::layer`] of verified content: the bytes stay verified.
    pub async fn layer(
        &self,
        client: &Client,
        media_type: &str,
    ) -> Result<Option<Verified<Bytes>>, ContentError> {
        let shown = Shown::Verified(self.clone());
        Ok(shown
            .layer(client, media_type)
            .await?
            .and_then(Shown::verified))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_gzip_sbom_is_inflated_off_the_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let ticked = Arc::new(AtomicBool::new(false));
            let tick = ticked.clone();
            tokio::spawn(async move { tick.store(true, Ordering::SeqCst) });
            let json = vec![b' '; 4 * 1024 * 1024];
            let inflated = inflate(crate::artifact::compression::gzip(&json))
                .await
                .unwrap();
            assert_eq!(inflated.len(), json.len());
            // The one runtime thread ran another task while the inflating went on.
            assert!(
                ticked.load(Ordering::SeqCst),
                "inflating held up the runtime"
            );
        });
    }
}
