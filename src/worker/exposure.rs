//! CVE exposure: after each reconcile walk, every vulnerability active on a tagged image
//! (in its newest Grype artifact) with how long it has been known (`firstSeen` to now).
//! Each one becomes a JSON line on standard output, for log pipelines, and the totals
//! become Prometheus metrics: active CVEs by severity and a histogram of exposure hours.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::catalog::summary::SummaryImage;
use crate::catalog::vulnerabilities::vulnerabilities;
use crate::catalog::CatalogError;
use crate::digest::Digest;
use crate::reference::{Reference, RepositoryName, Tag, Target};
use crate::registry::Client;
use crate::scan::report::Severity;
use crate::trust::Trust;

/// Upper bounds of the exposure histogram's buckets, in hours (a day, a week, 30 and
/// 90 days, a year).
const BUCKETS: [f64; 8] = [1.0, 6.0, 24.0, 72.0, 168.0, 720.0, 2160.0, 8760.0];

/// One active vulnerability on one tag.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Exposure {
    /// The vulnerability id.
    pub cve: String,
    /// Its severity.
    pub severity: Severity,
    /// Hours since refcat first saw it on this package of this image; `None` when its
    /// record says nothing of when (unknown, not zero).
    pub exposure_hours: Option<f64>,
    /// The repository.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The package.
    pub package: String,
}

/// The exposures of the image `digest` under each of `tags`, as of `now`, from the
/// results that verify with `own` (the publisher's key): its vulnerabilities are read
/// once however many tags name it.
pub async fn of_image(
    client: &Client,
    own: &Trust,
    repository: &RepositoryName,
    digest: &Digest,
    tags: &[Tag],
    now: OffsetDateTime,
) -> Result<Vec<Exposure>, CatalogError> {
    let reference = Reference {
        registry: client.registry().to_string(),
        repository: repository.clone(),
        target: Target::Digest(digest.clone()),
    };
    let view = vulnerabilities(client, &reference, &Default::default(), own).await?;
    let active: Vec<Active> = view
        .platforms
        .values()
        .flat_map(|p| p.matches.iter().flatten())
        .map(|e| Active {
            id: &e.matched.id,
            severity: e.matched.severity,
            package: &e.matched.package,
            first_seen: e.first_seen.as_deref(),
        })
        .collect();
    Ok(exposures(&active, repository, tags, now))
}

/// The exposures of `image` under each of `tags`, as of `now`, from the repository's
/// signed summary, which holds what the image's verified results say.
pub fn of_summary(
    image: &SummaryImage,
    repository: &RepositoryName,
    tags: &[Tag],
    now: OffsetDateTime,
) -> Vec<Exposure> {
    let active: Vec<Active> = image
        .platforms
        .iter()
        .flat_map(|p| p.matches.iter().flatten())
        .map(|m| Active {
            id: &m.id,
            severity: m.severity,
            package: &m.package,
            first_seen: m.first_seen.as_deref(),
        })
        .collect();
    exposures(&active, repository, tags, now)
}

/// One match on one platform, as an exposure needs it.
struct Active<'a> {
    id: &'a str,
    severity: Severity,
    package: &'a str,
    first_seen: Option<&'a str>,
}

fn exposures(
    active: &[Active],
    repository: &RepositoryName,
    tags: &[Tag],
    now: OffsetDateTime,
) -> Vec<Exposure> {
    let mut seen = BTreeSet::new();
    let mut one_tag = Vec::new();
    for entry in active {
        // The same vulnerability on the same package on two platforms is one exposure.
        if !seen.insert((entry.id, entry.package)) {
            continue;
        }
        let since = entry
            .first_seen
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        let hours = since.map(|s| ((now - s).as_seconds_f64() / 3600.0).max(0.0));
        one_tag.push((entry, hours.map(|h| (h * 100.0).round() / 100.0)));
    }
    tags.iter()
        .flat_map(|tag| {
            one_tag.iter().map(move |(entry, hours)| Exposure {
                cve: entry.id.to_string(),
                severity: entry.severity,
                exposure_hours: *hours,
                repository: repository.to_string(),
                tag: tag.to_string(),
                package: entry.package.to_string(),
            })
        })
        .collect()
}

/// The Prometheus view of one walk's exposures.
#[derive(Clone, Debug, Default)]
pub struct ExposureMetrics {
    active: BTreeMap<Severity, BTreeSet<String>>,
    histogram: BTreeMap<Severity, ([u64; BUCKETS.len()], u64, f64)>,
}

impl ExposureMetrics {
    /// Summarises `exposures`: distinct CVE ids per severity, and every exposure in the
    /// histogram.
    pub fn new(exposures: &[Exposure]) -> Self {
        let mut metrics = ExposureMetrics::default();
        for e in exposures {
            metrics
                .active
                .entry(e.severity)
                .or_default()
                .insert(e.cve.clone());
            // An exposure of unknown age is active, but has no place in the histogram.
            let Some(hours) = e.exposure_hours else {
                continue;
            };
            let (buckets, count, sum) = metrics.histogram.entry(e.severity).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if hours <= *bound {
                    buckets[i] += 1;
                }
            }
            *count += 1;
            *sum += hours;
        }
        metrics
    }

    /// The metrics in the Prometheus text format.
    pub fn write_prometheus(&self, out: &mut String) {
        out.push_str("# HELP refcat_active_cves Distinct vulnerabilities on tagged images at the last walk, by severity.\n# TYPE refcat_active_cves gauge\n");
        for severity in Severity::ALL {
            let n = self.active.get(&severity).map_or(0, BTreeSet::len);
            let _ = writeln!(
                out,
                "refcat_active_cves{{severity=\"{}\"}} {n}",
                severity.as_str()
            );
        }
        out.push_str("# HELP refcat_cve_exposure_hours Hours each active vulnerability has been known on each tag and package, at the last walk.\n# TYPE refcat_cve_exposure_hours histogram\n");
        for (severity, (buckets, count, sum)) in &self.histogram {
            let s = severity.as_str();
            for (bound, n) in BUCKETS.iter().zip(buckets) {
                let _ = writeln!(
                    out,
                    "refcat_cve_exposure_hours_bucket{{severity=\"{s}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "refcat_cve_exposure_hours_bucket{{severity=\"{s}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "refcat_cve_exposure_hours_sum{{severity=\"{s}\"}} {sum:.2}"
            );
            let _ = writeln!(
                out,
                "refcat_cve_exposure_hours_count{{severity=\"{s}\"}} {count}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(cve: &str, severity: Severity, hours: f64) -> Exposure {
        Exposure {
            cve: cve.into(),
            severity,
            exposure_hours: Some(hours),
            repository: "r".into(),
            tag: "t".into(),
            package: "p".into(),
        }
    }

    #[test]
    fn metrics_count_distinct_cves_and_bucket_every_exposure() {
        let metrics = ExposureMetrics::new(&[
            exposure("CVE-1", Severity::High, 0.5),
            exposure("CVE-1", Severity::High, 30.0),
            exposure("CVE-2", Severity::Low, 200.0),
        ]);
        let mut text = String::new();
        metrics.write_prometheus(&mut text);
        assert!(
            text.contains("refcat_active_cves{severity=\"high\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("refcat_active_cves{severity=\"low\"} 1\n"));
        assert!(text.contains("refcat_active_cves{severity=\"critical\"} 0\n"));
        assert!(text.contains("refcat_cve_exposure_hours_bucket{severity=\"high\",le=\"1\"} 1\n"));
        assert!(text.contains("refcat_cve_exposure_hours_bucket{severity=\"high\",le=\"72\"} 2\n"));
        assert!(text.contains("refcat_cve_exposure_hours_bucket{severity=\"low\",le=\"168\"} 0\n"));
        assert!(text.contains("refcat_cve_exposure_hours_count{severity=\"low\"} 1\n"));
    }
}
