//! What refcat writes into registries and reads back: media types, annotation keys
//! and the builders for artifact manifests and referrer descriptors.

pub mod compression;
mod format;
pub mod manifest;

pub use format::Format;
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

    /// Which output an artifact holds: `syft-json`, `spdx-json` or `grype-json` (the
    /// scanners' `-o` names). Read along with artifactType, which some registries do
    /// not list faithfully.
    pub const FORMAT: &str = "dev.refcat.format";
    /// The scanner that produced it: `syft` or `grype`.
    pub const SCANNER: &str = "dev.refcat.scanner";
    /// The scanner's version.
    pub const SCANNER_VERSION: &str = "dev.refcat.scanner.version";
    /// When the Grype DB a result was matched against was built (RFC 3339).
    pub const GRYPE_DB_BUILT: &str = "dev.refcat.grype.db.built";
    /// That DB's schema version.
    pub const GRYPE_DB_SCHEMA: &str = "dev.refcat.grype.db.schema";
    /// How many packages the SBOM lists, or grype matched against.
    pub const PACKAGES: &str = "dev.refcat.packages";
    /// The platform of the subject manifest, `os/arch[/variant]`.
    pub const PLATFORM: &str = "dev.refcat.platform";
    /// Prefix of the per-severity match counts: `dev.refcat.vulnerabilities.high`, …
    pub const VULNERABILITIES_PREFIX: &str = "dev.refcat.vulnerabilities.";
    /// On a release in the release log: the tags seen on it, comma-separated.
    pub const RELEASE_TAGS: &str = "dev.refcat.release.tags";
    /// On a release in the release log: when it was first seen (RFC 3339).
    pub const RELEASE_FIRST_SEEN: &str = "dev.refcat.release.first-seen";
    /// On a release in the release log: when it was last found pullable by digest after
    /// every tag had left it (RFC 3339); such a release is not checked again.
    pub const RELEASE_KEPT: &str = "dev.refcat.release.kept";
    /// On a release in the release log: when the worker found it gone (no tag points at
    /// it and the registry no longer serves it); it is never pushed again.
    pub const RELEASE_GONE: &str = "dev.refcat.release.gone";
    /// On the release log's head: the repository it is the log of (signed with it, so
    /// a log copied from another repository is not this one's).
    pub const RELEASE_REPOSITORY: &str = "dev.refcat.release.repository";
    /// On an entry of the release log's head: a log found under the tag that did not
    /// verify, replaced by this one. It stays referenced, so what it lists is not lost
    /// to garbage collection, and none of it is believed.
    pub const RELEASE_SUPERSEDED: &str = "dev.refcat.release.superseded";
    /// On an entry of the release log's tagged head: it is a sealed segment of older
    /// releases (an index of its own), holding this many.
    pub const RELEASE_SEGMENT: &str = "dev.refcat.release.segment";
}

/// The current time as RFC 3339 UTC with nanoseconds, always nine digits, as
/// `created` annotations use: two artifacts made within one second still order, and the
/// text sorts as the time does.
pub fn now_rfc3339() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// `at` as [`now_rfc3339`] writes times.
pub fn format_time(at: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .expect("a UTC time formats")
}

/// Whether a result matched with a DB built at `built` is current for the DB in use,
/// built at `db_built`: built no earlier, compared as times. A missing or unreadable
/// time is old.
pub fn is_current(built: Option<&str>, db_built: &str) -> bool {
    match (built.and_then(parse_time), parse_time(db_built)) {
        (Some(built), Some(current)) => built >= current,
        _ => false,
    }
}

/// An RFC 3339 time as written in annotations; `None` when it is not one. Times are
/// compared parsed, never as text: another writer's offset or precision, or a pusher's
/// `~`, must not decide what is newest.
pub fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_current_when_its_db_is_no_older() {
        let db = "2026-11-01T00:00:00Z";
        assert!(is_current(Some("2026-11-01T00:00:00Z"), db));
        assert!(is_current(Some("2026-11-01T01:00:00+01:00"), db));
        assert!(is_current(Some("2026-11-02T00:00:00Z"), db));
        assert!(!is_current(Some("2026-10-31T23:59:59.9Z"), db));
        assert!(!is_current(Some("~"), db));
        assert!(!is_current(None, db));
    }
}
