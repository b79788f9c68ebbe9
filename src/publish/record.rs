//! refcat's own record beside grype's output: a summary, and when each vulnerability
//! was first seen on each package. `first_seen` carries over from the previous record
//! of the same digest, so a re-scan after a DB update keeps the original date.
//! Its lexicon is `lexicons/dev.refcat.vulnerabilityRecord.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::scan::report::{Match, Severity};
use crate::scan::{DbStatus, ScannerVersion};

/// The record type, as in its lexicon.
pub const RECORD_TYPE: &str = "dev.refcat.vulnerabilityRecord";

/// refcat's record of one grype run on one platform manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VulnerabilityRecord {
    /// Always [`RECORD_TYPE`].
    #[serde(rename = "$type")]
    pub record_type: String,
    /// The platform manifest that was scanned.
    pub subject: Digest,
    /// Its platform.
    pub platform: String,
    /// The grype version.
    pub scanner_version: String,
    /// When the Grype DB was built.
    pub db_built: String,
    /// The Grype DB schema.
    pub db_schema: String,
    /// When this record was made.
    pub created: String,
    /// Matches per severity.
    pub summary: BTreeMap<Severity, usize>,
    /// One entry per vulnerability and package.
    pub vulnerabilities: Vec<RecordEntry>,
}

/// One vulnerability on one package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordEntry {
    /// Vulnerability id.
    pub id: String,
    /// Severity.
    pub severity: Severity,
    /// Package name.
    pub package: String,
    /// Installed version.
    pub version: String,
    /// When refcat first saw this vulnerability on this package (RFC 3339).
    pub first_seen: String,
}

/// What a new record is made from.
pub struct RecordInput<'a> {
    /// The platform manifest.
    pub subject: &'a Digest,
    /// Its platform.
    pub platform: String,
    /// grype's version.
    pub grype: &'a ScannerVersion,
    /// The DB it used.
    pub db: &'a DbStatus,
    /// What it matched.
    pub matches: &'a [Match],
    /// Now, RFC 3339.
    pub now: &'a str,
}

impl VulnerabilityRecord {
    /// A record for `input`, carrying `first_seen` over from `previous`.
    pub fn new(input: RecordInput<'_>, previous: Option<&VulnerabilityRecord>) -> Self {
        let seen: BTreeMap<(&str, &str), &str> = previous
            .map(|p| {
                p.vulnerabilities
                    .iter()
                    .map(|e| ((e.id.as_str(), e.package.as_str()), e.first_seen.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let vulnerabilities = input
            .matches
            .iter()
            .map(|m| RecordEntry {
                id: m.id.clone(),
                severity: m.severity,
                package: m.package.clone(),
                version: m.version.clone(),
                first_seen: seen
                    .get(&(m.id.as_str(), m.package.as_str()))
                    .copied()
                    .unwrap_or(input.now)
                    .to_string(),
            })
            .collect();
        VulnerabilityRecord {
            record_type: RECORD_TYPE.into(),
            subject: input.subject.clone(),
            platform: input.platform,
            scanner_version: input.grype.version.clone(),
            db_built: input.db.built.clone(),
            db_schema: input.db.schema_version.clone(),
            created: input.now.to_string(),
            summary: crate::scan::report::counts(input.matches),
            vulnerabilities,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, package: &str) -> Match {
        Match {
            id: id.into(),
            severity: Severity::High,
            package: package.into(),
            version: "1".into(),
            package_type: "deb".into(),
            purl: None,
            fix_versions: vec![],
            fix_state: "unknown".into(),
            data_source: None,
        }
    }

    #[test]
    fn first_seen_carries_over_per_vulnerability_and_package() {
        let subject = crate::digest::sha256(b"m");
        let grype = ScannerVersion {
            name: "grype",
            version: "0.116.0".into(),
        };
        let db = DbStatus {
            built: "2026-11-01T00:00:00Z".into(),
            schema_version: "v6.1.9".into(),
        };
        let input = |matches, now| RecordInput {
            subject: &subject,
            platform: "linux/amd64".into(),
            grype: &grype,
            db: &db,
            matches,
            now,
        };
        let first = [m("CVE-1", "a")];
        let r1 = VulnerabilityRecord::new(input(&first, "2026-11-01T10:00:00Z"), None);
        let second = [m("CVE-1", "a"), m("CVE-2", "a")];
        let r2 = VulnerabilityRecord::new(input(&second, "2026-11-05T10:00:00Z"), Some(&r1));
        assert_eq!(r2.vulnerabilities[0].first_seen, "2026-11-01T10:00:00Z");
        assert_eq!(r2.vulnerabilities[1].first_seen, "2026-11-05T10:00:00Z");
        assert_eq!(r2.summary[&Severity::High], 2);
        let json = serde_json::to_value(&r2).unwrap();
        assert_eq!(json["$type"], RECORD_TYPE);
        assert_eq!(json["summary"]["high"], 2);
    }
}
