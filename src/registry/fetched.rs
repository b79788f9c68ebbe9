//! A manifest as a registry served it.

use bytes::Bytes;

use crate::digest::Digest;
use crate::oci::{Descriptor, Manifest};

/// A manifest as served, with the digest of its exact bytes.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// The served media type.
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
    /// The exact bytes served.
    pub bytes: Bytes,
    /// The parsed document.
    pub manifest: Manifest,
}

impl FetchedManifest {
    /// A descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}
