//! The artifacts of one platform manifest, exactly as DESIGN.md's table says: empty
//! config, `subject`, one titled layer holding the scanner's bytes unchanged (the Grype
//! artifact adds refcat's record as a second layer), and annotations that let list
//! views work from the referrers index alone.

use std::io::{Read as _, Write as _};

use bytes::Bytes;

use super::existing::Format;
use super::record::VulnerabilityRecord;
use super::PublishError;
use crate::artifact::annotations::{
    CREATED, FORMAT, GRYPE_DB_BUILT, GRYPE_DB_SCHEMA, PACKAGES, PLATFORM, SCANNER, SCANNER_VERSION,
    VULNERABILITIES_PREFIX,
};
use crate::artifact::media_types::{SYFT_JSON, SYFT_JSON_GZIP, VULNERABILITY_RECORD};
use crate::artifact::{ArtifactBuilder, ArtifactLayer, BuiltArtifact};
use crate::catalog::platforms::PlatformManifest;
use crate::scan::{DbStatus, ScannerVersion};

/// Largest decompressed Syft JSON refcat will read back.
const MAX_SBOM_BYTES: u64 = 512 * 1024 * 1024;

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

/// Deterministic gzip (no name, no mtime): the same SBOM compresses to the same blob.
fn gzip(data: &[u8]) -> Bytes {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).expect("writing to memory");
    Bytes::from(encoder.finish().expect("writing to memory"))
}

/// A stored Syft JSON layer in either form, as plain JSON bytes.
pub fn syft_json_from_layer(media_type: &str, data: Bytes) -> Result<Bytes, PublishError> {
    match media_type {
        SYFT_JSON => Ok(data),
        SYFT_JSON_GZIP => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&data[..])
                .take(MAX_SBOM_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|e| PublishError::Stored(format!("the gzip Syft JSON is corrupt: {e}")))?;
            if out.len() as u64 > MAX_SBOM_BYTES {
                return Err(PublishError::Stored(format!(
                    "the Syft JSON decompresses to more than {MAX_SBOM_BYTES} bytes"
                )));
            }
            Ok(Bytes::from(out))
        }
        other => Err(PublishError::Stored(format!(
            "the Syft artifact's layer is {other}, not Syft JSON"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_deterministic_and_reads_back() {
        let data = Bytes::from_static(br#"{"artifacts":[]}"#);
        let a = gzip(&data);
        assert_eq!(a, gzip(&data));
        assert_eq!(syft_json_from_layer(SYFT_JSON_GZIP, a).unwrap(), data);
        assert_eq!(syft_json_from_layer(SYFT_JSON, data.clone()).unwrap(), data);
        assert!(syft_json_from_layer(SYFT_JSON_GZIP, data).is_err());
    }
}
