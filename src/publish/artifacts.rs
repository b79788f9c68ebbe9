//! The artifacts of one platform manifest, exactly as DESIGN.md's table says: empty
//! config, `subject`, one titled layer holding the scanner's bytes unchanged (the Grype
//! artifact adds refcat's record as a second layer), and annotations that let list
//! views work from the artifact manifest alone.

use bytes::Bytes;

use crate::artifact::annotations::{
    CREATED, FORMAT, GRYPE_DB_BUILT, GRYPE_DB_SCHEMA, PACKAGES, PLATFORM, SCANNER, SCANNER_VERSION,
    VULNERABILITIES_PREFIX,
};
use crate::artifact::compression::gzip;
use crate::artifact::{ArtifactBuilder, ArtifactLayer, BuiltArtifact};
use crate::catalog::existing::Format;
use crate::catalog::platforms::PlatformManifest;
use crate::media_types::{SYFT_JSON, SYFT_JSON_GZIP, VULNERABILITY_RECORD};
use crate::records::VulnerabilityRecord;
use crate::scan::{DbStatus, ScannerVersion};

fn base(
    format: Format,
    subject: &PlatformManifest,
    scanner: &ScannerVersion,
    packages: usize,
    created: &str,
) -> ArtifactBuilder {
    ArtifactBuilder::new(format.artifact_type())
        .subject(subject.descriptor.clone())
        .annotation(CREATED, created)
        .annotation(FORMAT, format.as_str())
        .annotation(SCANNER, scanner.name)
        .annotation(SCANNER_VERSION, scanner.version.clone())
        .annotation(PLATFORM, subject.platform.to_string())
        .annotation(PACKAGES, packages.to_string())
}

/// An SBOM artifact: Syft JSON (gzip-compressed when `compress`) or SPDX JSON.
pub fn sbom(
    format: Format,
    data: Bytes,
    subject: &PlatformManifest,
    syft: &ScannerVersion,
    packages: usize,
    compress: bool,
    created: &str,
) -> BuiltArtifact {
    let layer = match (format, compress) {
        (Format::SyftJson, true) => ArtifactLayer {
            media_type: SYFT_JSON_GZIP.into(),
            data: gzip(&data),
            title: "sbom.syft.json.gz".into(),
        },
        (Format::SyftJson, false) => ArtifactLayer {
            media_type: SYFT_JSON.into(),
            data,
            title: "sbom.syft.json".into(),
        },
        _ => ArtifactLayer {
            media_type: format.artifact_type().into(),
            data,
            title: "sbom.spdx.json".into(),
        },
    };
    base(format, subject, syft, packages, created)
        .layer(layer)
        .build()
}

/// The Grype artifact: grype's JSON unchanged, then refcat's record.
pub fn grype(
    grype_json: Bytes,
    record: &VulnerabilityRecord,
    subject: &PlatformManifest,
    grype: &ScannerVersion,
    db: &DbStatus,
    packages: usize,
    created: &str,
) -> BuiltArtifact {
    let mut builder = base(Format::GrypeJson, subject, grype, packages, created)
        .annotation(GRYPE_DB_BUILT, db.built.clone())
        .annotation(GRYPE_DB_SCHEMA, db.schema_version.clone());
    for (severity, count) in &record.summary {
        builder = builder.annotation(
            format!("{VULNERABILITIES_PREFIX}{severity}"),
            count.to_string(),
        );
    }
    builder
        .layer(ArtifactLayer {
            media_type: Format::GrypeJson.artifact_type().into(),
            data: grype_json,
            title: "vulnerabilities.grype.json".into(),
        })
        .layer(ArtifactLayer {
            media_type: VULNERABILITY_RECORD.into(),
            data: Bytes::from(serde_json::to_vec(record).expect("records serialize")),
            title: "refcat-record.json".into(),
        })
        .build()
}
