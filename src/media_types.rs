//! The one table of media types refcat speaks. Every other module names these
//! constants instead of spelling the strings.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker schema 2 image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI gzip-compressed layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The OCI empty descriptor's media type, used as artifact config.
pub const EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";
/// The bytes of the OCI empty JSON blob.
pub const EMPTY_JSON_BYTES: &[u8] = b"{}";

/// Syft's native JSON SBOM.
pub const SYFT_JSON: &str = "application/vnd.syft+json";
/// SPDX JSON SBOM.
pub const SPDX_JSON: &str = "application/spdx+json";
/// Syft JSON stored gzip-compressed (`--compress`).
pub const SYFT_JSON_GZIP: &str = "application/vnd.syft+json+gzip";
/// refcat's own record beside grype's output: summary and `first_seen` per match.
pub const VULNERABILITY_RECORD: &str = "application/vnd.dev.refcat.vulnerability-record.v1+json";
/// The artifactType of a repository's release log: an index of every release seen.
pub const RELEASE_LOG: &str = "application/vnd.dev.refcat.release-log.v1+json";
/// The catalog-wide vulnerability aggregate the worker stores (artifactType and layer).
pub const CATALOG_AGGREGATE: &str = "application/vnd.dev.refcat.catalog-aggregate.v1+json";
/// The repositories the worker found, stored where `_catalog` cannot list them
/// (artifactType and layer).
pub const REPOSITORY_LIST: &str = "application/vnd.dev.refcat.repository-list.v1+json";
/// Where refcat has published complete sets, per platform manifest: the index
/// promotion reuse reads (artifactType and layer).
pub const SUBJECT_INDEX: &str = "application/vnd.dev.refcat.subject-index.v1+json";
/// One repository's summary the worker keeps: its image tags, and per image its
/// platforms and refcat's results (artifactType and layer).
pub const REPOSITORY_SUMMARY: &str = "application/vnd.dev.refcat.repository-summary.v1+json";
/// Grype's JSON results (no registered type exists; this follows Syft's).
pub const GRYPE_JSON: &str = "application/vnd.grype+json";

/// A Sigstore bundle v0.3 (cosign v3's signature format), as artifactType and layer type.
pub const SIGSTORE_BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The payload layer of a legacy cosign `.sig` signature manifest.
pub const COSIGN_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// A DSSE envelope, as a layer of cosign's legacy `.att` attestation manifest.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_JSON: &str = "application/vnd.in-toto+json";

/// Every manifest media type refcat can read, for `Accept` headers.
pub const MANIFEST_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// Whether `media_type` names an index (OCI or Docker list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}
