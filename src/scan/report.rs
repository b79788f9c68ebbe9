//! What refcat reads from grype's JSON: each match, and counts per severity. The shape
//! of grype's output drifts between versions, so only the stable fields are read and
//! everything else is ignored.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A severity as grype reports it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Critical.
    Critical,
    /// High.
    High,
    /// Medium.
    Medium,
    /// Low.
    Low,
    /// Negligible.
    Negligible,
    /// Anything else grype says, including "Unknown".
    Unknown,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Negligible,
        Severity::Unknown,
    ];

    /// Reads grype's spelling (`High`, `Negligible`, …).
    pub fn parse(text: &str) -> Severity {
        match text.to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" => Severity::Medium,
            "low" => Severity::Low,
            "negligible" => Severity::Negligible,
            _ => Severity::Unknown,
        }
    }

    /// The lower-case name used in annotations and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Negligible => "negligible",
            Severity::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One vulnerability matched against one package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    /// e.g. `CVE-2023-4911` or `GHSA-…`.
    pub id: String,
    /// grype's severity.
    pub severity: Severity,
    /// The package name.
    pub package: String,
    /// The installed version.
    pub version: String,
    /// The package type (`deb`, `apk`, `python`, `npm`, …).
    pub package_type: String,
    /// The package URL, when syft found one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    /// Versions that fix it.
    pub fix_versions: Vec<String>,
    /// `fixed`, `not-fixed`, `wont-fix` or `unknown`.
    pub fix_state: String,
    /// Where the advisory comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_source: Option<String>,
}

/// Why grype's JSON could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not grype JSON: {0}")]
pub struct ReportError(String);

/// Every match in a grype JSON document, sorted by id then package.
pub fn matches(grype_json: &[u8]) -> Result<Vec<Match>, ReportError> {
    let document: serde_json::Value =
        serde_json::from_slice(grype_json).map_err(|e| ReportError(e.to_string()))?;
    let items = document["matches"]
        .as_array()
        .ok_or_else(|| ReportError("no matches array".into()))?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let mut out: Vec<Match> = items
        .iter()
        .map(|m| {
            let vulnerability = &m["vulnerability"];
            let artifact = &m["artifact"];
            Match {
                id: text(&vulnerability["id"]).unwrap_or_default(),
                severity: Severity::parse(vulnerability["severity"].as_str().unwrap_or("")),
                package: text(&artifact["name"]).unwrap_or_default(),
                version: text(&artifact["version"]).unwrap_or_default(),
                package_type: text(&artifact["type"]).unwrap_or_default(),
                purl: text(&artifact["purl"]).filter(|p| !p.is_empty()),
                fix_versions: vulnerability["fix"]["versions"]
                    .as_array()
                    .map(|v| v.iter().filter_map(text).collect())
                    .unwrap_or_default(),
                fix_state: text(&vulnerability["fix"]["state"]).unwrap_or_else(|| "unknown".into()),
                data_source: text(&vulnerability["dataSource"]).filter(|s| !s.is_empty()),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.id, &a.package, &a.version).cmp(&(&b.id, &b.package, &b.version)));
    out.dedup_by(|a, b| a.id == b.id && a.package == b.package && a.version == b.version);
    Ok(out)
}

/// Matches per severity, every severity present (zero when none).
pub fn counts(matches: &[Match]) -> BTreeMap<Severity, usize> {
    let mut counts: BTreeMap<Severity, usize> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
    for m in matches {
        *counts.entry(m.severity).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_matches_and_counts_them() {
        let json = br#"{"matches":[
          {"vulnerability":{"id":"CVE-1","severity":"High","fix":{"versions":["2"],"state":"fixed"},"dataSource":"https://x"},
           "artifact":{"name":"a","version":"1","type":"deb","purl":"pkg:deb/a@1"}},
          {"vulnerability":{"id":"CVE-0","severity":"Weird"},"artifact":{"name":"b","version":"1","type":"npm"}}
        ],"descriptor":{"name":"grype"}}"#;
        let m = matches(json).unwrap();
        assert_eq!(m[0].id, "CVE-0");
        assert_eq!(m[0].severity, Severity::Unknown);
        assert_eq!(m[0].fix_state, "unknown");
        assert_eq!(m[1].fix_versions, vec!["2"]);
        let c = counts(&m);
        assert_eq!(c[&Severity::High], 1);
        assert_eq!(c[&Severity::Critical], 0);
        assert!(matches(b"{}").is_err());
    }
}
