//! What the publisher signs. A [`Signable`] is built only from refcat's own scanner
//! output ([`Sboms`], [`GrypeResult`]) and content verified with its key
//! ([`Verified`], [`VerifiedAggregate`]); the publisher signs nothing else, so a
//! look-alike artifact, a rewritten listing or a pusher's annotation can never come
//! out of refcat signed.
//!
//! Scan results follow DESIGN.md's table: empty config, `subject`, one titled layer
//! holding the scanner's bytes unchanged (the Grype artifact adds refcat's record as a
//! second layer), and annotations that let list views work from the manifest alone.

use bytes::Bytes;

use crate::artifact::annotations::{
    CREATED, FORMAT, GRYPE_DB_BUILT, GRYPE_DB_SCHEMA, PACKAGES, PLATFORM, SCANNER, SCANNER_VERSION,
    VULNERABILITIES_PREFIX,
};
use crate::artifact::compression::gzip;
use crate::artifact::{ArtifactBuilder, ArtifactLayer, BuiltArtifact, Format};
use crate::catalog::aggregate::VerifiedAggregate;
use crate::catalog::platforms::PlatformManifest;
use crate::catalog::repositories::{Listed, RepositoryList};
use crate::catalog::subjects::SubjectIndex;
use crate::catalog::summary::RepositorySummary;
use crate::digest::Digest;
use crate::media_types::{
    CATALOG_AGGREGATE, OCI_INDEX, RELEASE_LOG, REPOSITORY_LIST, REPOSITORY_SUMMARY, SUBJECT_INDEX,
    SYFT_JSON, SYFT_JSON_GZIP, VULNERABILITY_RECORD,
};
use crate::oci::Descriptor;
use crate::records::release_log::SealedLog;
use crate::records::vulnerability::{RecordInput, VulnerabilityRecord};
use crate::scan::report::{self, ReportError};
use crate::scan::{DbStatus, GrypeResult, Sboms, ScannerVersion};
use crate::trust::Verified;

/// A manifest the publisher may sign and push, with its blobs.
#[derive(Clone, Debug)]
pub struct Signable {
    artifact: BuiltArtifact,
    format: Option<Format>,
}

impl Signable {
    /// The manifest and its blobs.
    pub(super) fn artifact(&self) -> &BuiltArtifact {
        &self.artifact
    }

    /// Its digest.
    pub fn digest(&self) -> &Digest {
        &self.artifact.digest
    }

    /// Which scan output it holds (`None` for a catalog document).
    pub fn format(&self) -> Option<Format> {
        self.format
    }

    fn scan(format: Format, artifact: BuiltArtifact) -> Self {
        Signable {
            artifact,
            format: Some(format),
        }
    }

    /// An SBOM artifact of `format` from syft's output: Syft JSON (gzip-compressed when
    /// `compress`) or SPDX JSON.
    pub fn sbom(
        format: Format,
        sboms: &Sboms,
        subject: &PlatformManifest,
        syft: &ScannerVersion,
        compress: bool,
        created: &str,
    ) -> Self {
        let layer = match (format, compress) {
            (Format::SyftJson, true) => ArtifactLayer {
                media_type: SYFT_JSON_GZIP.into(),
                data: gzip(sboms.syft_json()),
                title: "sbom.syft.json.gz".into(),
            },
            (Format::SyftJson, false) => ArtifactLayer {
                media_type: SYFT_JSON.into(),
                data: sboms.syft_json().clone(),
                title: "sbom.syft.json".into(),
            },
            _ => ArtifactLayer {
                media_type: format.artifact_type().into(),
                data: sboms.spdx_json().clone(),
                title: "sbom.spdx.json".into(),
            },
        };
        let built = base(format, subject, syft, sboms.packages(), created)
            .layer(layer)
            .build();
        Signable::scan(format, built)
    }

    /// The Grype artifact: grype's JSON unchanged, then refcat's record, whose
    /// `first_seen` dates carry over from `previous`, a record refcat signed earlier.
    pub fn grype(
        result: &GrypeResult,
        previous: Option<&Verified<VulnerabilityRecord>>,
        scanned: GrypeRun<'_>,
    ) -> Result<Self, ReportError> {
        let matches = report::matches(result.bytes())?;
        let record = VulnerabilityRecord::new(
            RecordInput {
                subject: &scanned.subject.descriptor.digest,
                platform: scanned.subject.platform.to_string(),
                grype: scanned.grype,
                db: scanned.db,
                matches: &matches,
                now: scanned.created,
            },
            previous.map(Verified::get),
        );
        let mut builder = base(
            Format::GrypeJson,
            scanned.subject,
            scanned.grype,
            scanned.packages,
            scanned.created,
        )
        .annotation(GRYPE_DB_BUILT, scanned.db.built.clone())
        .annotation(GRYPE_DB_SCHEMA, scanned.db.schema_version.clone());
        for (severity, count) in &record.summary {
            builder = builder.annotation(
                format!("{VULNERABILITIES_PREFIX}{severity}"),
                count.to_string(),
            );
        }
        let built = builder
            .layer(ArtifactLayer {
                media_type: Format::GrypeJson.artifact_type().into(),
                data: result.bytes().clone(),
                title: "vulnerabilities.grype.json".into(),
            })
            .layer(ArtifactLayer {
                media_type: VULNERABILITY_RECORD.into(),
                data: Bytes::from(serde_json::to_vec(&record).expect("records serialize")),
                title: "refcat-record.json".into(),
            })
            .build();
        Ok(Signable::scan(Format::GrypeJson, built))
    }

    /// The catalog aggregate, made of verified results alone.
    pub fn aggregate(aggregate: &VerifiedAggregate, created: &str) -> Self {
        document(
            CATALOG_AGGREGATE,
            "vulnerabilities.json",
            aggregate.data(),
            created,
        )
    }

    /// Where refcat has published complete sets, per platform manifest.
    pub fn subject_index(index: &SubjectIndex, created: &str) -> Self {
        document(SUBJECT_INDEX, "subjects.json", index, created)
    }

    /// A repository's summary, made of what the publisher's key verified.
    pub fn repository_summary(summary: &RepositorySummary, created: &str) -> Self {
        document(REPOSITORY_SUMMARY, "summary.json", summary, created)
    }

    /// The head of a release log: releases the worker saw under tags, kept from a log
    /// verified with the publisher's key and what the registry answered since.
    pub fn release_log(sealed: &SealedLog) -> Self {
        let head = sealed.head().clone();
        let digest = crate::digest::sha256(&head);
        let descriptor = Descriptor {
            artifact_type: Some(RELEASE_LOG.into()),
            ..Descriptor::new(OCI_INDEX, digest.clone(), head.len() as u64)
        };
        Signable {
            artifact: BuiltArtifact {
                manifest: head,
                digest,
                blobs: Vec::new(),
                descriptor,
                subject: None,
            },
            format: None,
        }
    }

    /// The repositories a listing found (from `_catalog`, the names the operator gave,
    /// webhooks the worker accepted, and a stored list verified with the publisher's
    /// key).
    pub fn repository_list(listed: &Listed, created: &str) -> Self {
        let list = RepositoryList::of(listed);
        document(REPOSITORY_LIST, "repositories.json", &list, created)
    }
}

/// What a grype run was about, for its artifact.
#[derive(Clone, Copy, Debug)]
pub struct GrypeRun<'a> {
    /// The platform manifest matched.
    pub subject: &'a PlatformManifest,
    /// grype's version.
    pub grype: &'a ScannerVersion,
    /// The DB it matched against.
    pub db: &'a DbStatus,
    /// How many packages the SBOM lists.
    pub packages: usize,
    /// Now, as `created` and the record's time.
    pub created: &'a str,
}

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

/// A catalog document: one JSON layer of its artifactType, no subject.
fn document(
    artifact_type: &str,
    title: &str,
    data: &impl serde::Serialize,
    created: &str,
) -> Signable {
    let built = ArtifactBuilder::new(artifact_type)
        .layer(ArtifactLayer {
            media_type: artifact_type.into(),
            data: serde_json::to_vec(data)
                .expect("a catalog document serializes")
                .into(),
            title: title.into(),
        })
        .annotation(CREATED, created)
        .build();
    Signable {
        artifact: built,
        format: None,
    }
}
