//! What refcat writes into registries and reads back: media types, annotation keys
//! and the builders for artifact manifests and referrer descriptors.

pub mod manifest;
pub mod media_types;

pub use manifest::{ArtifactBuilder, ArtifactLayer, BuiltArtifact};

/// Annotation keys refcat sets or reads.
pub mod annotations {
    /// When the artifact was created (RFC 3339); Ratify and regctl pick the newest by it.
    pub const CREATED: &str = "org.opencontainers.image.created";
    /// The file name `oras pull` writes a layer to.
    pub const TITLE: &str = "org.opencontainers.image.title";
    /// What a Sigstore bundle referrer holds (`dsse-envelope`).
    pub const BUNDLE_CONTENT: &str = "dev.sigstore.bundle.content";
    /// The predicate type of the statement inside a Sigstore bundle referrer.
    pub const BUNDLE_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";
    /// The base64 signature on a legacy cosign `.sig` layer.
    pub const COSIGN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
}
