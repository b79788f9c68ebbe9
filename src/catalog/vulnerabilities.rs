//! The vulnerabilities view: per-platform matches from the newest Grype artifact, with
//! refcat's `first_seen`, filtered by severity, with totals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::platforms::with_each_platform;
use super::CatalogError;
use crate::artifact::annotations::{CREATED, GRYPE_DB_BUILT};
use crate::artifact::Format;
use crate::digest::Digest;
use crate::media_types::{GRYPE_JSON, VULNERABILITY_RECORD};
use crate::records::VulnerabilityRecord;
use crate::reference::{Reference, RepositoryName};
use crate::registry::Client;
use crate::scan::report::{self, Match, Severity};
use crate::trust::{Judged, Shown, Trust, Verdict};

/// Filters for the vulnerabilities view.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VulnerabilityQuery {
    /// Only matches of this severity.
    pub severity: Option<Severity>,
    /// The order of the matches (default: grype's).
    pub sort: Option<MatchOrder>,
}

/// How matches are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum MatchOrder {
    /// Most severe first, then by id.
    Severity,
    /// By vulnerability id.
    Id,
    /// By package name, then id.
    Package,
    /// Known longest first (oldest `firstSeen`), then by id.
    FirstSeen,
}

impl MatchOrder {
    /// Sorts `entries` in this order (stable).
    pub fn sort(self, entries: &mut [VulnerabilityEntry]) {
        let id = |e: &VulnerabilityEntry| e.matched.id.clone();
        match self {
            MatchOrder::Severity => entries.sort_by_key(|e| (e.matched.severity, id(e))),
            MatchOrder::Id => entries.sort_by_key(id),
            MatchOrder::Package => entries.sort_by_key(|e| (e.matched.package.clone(), id(e))),
            // Entries without a firstSeen go last.
            MatchOrder::FirstSeen => {
                entries.sort_by_key(|e| (e.first_seen.is_none(), e.first_seen.clone(), id(e)))
            }
        }
    }
}

/// Matches per platform.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VulnerabilitiesView {
    /// As asked.
    pub reference: String,
    /// By platform.
    pub platforms: BTreeMap<String, VulnerabilityPlatform>,
}

/// One platform's matches. Where no result may be shown (none yet, or none whose
/// signature verifies), `totals` and `matches` are `null`: unknown, never zero.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VulnerabilityPlatform {
    /// The platform manifest's digest.
    pub digest: String,
    /// The Grype artifact read; `None` when the platform was not scanned yet (or, with
    /// `--require-signature`, has no result whose signature verifies).
    pub artifact: Option<String>,
    /// Its signature verdict (`not-checked` when the catalog runs without keys).
    pub signature: Option<Verdict>,
    /// When it was made.
    pub scanned_at: Option<String>,
    /// When its Grype DB was built.
    pub db_built: Option<String>,
    /// All matches per severity, before filtering; `null` when no result may be shown.
    pub totals: Option<BTreeMap<Severity, usize>>,
    /// The matches that pass the filter; `null` when no result may be shown.
    pub matches: Option<Vec<VulnerabilityEntry>>,
}

/// One match with when refcat first saw it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VulnerabilityEntry {
    /// grype's match.
    #[serde(flatten)]
    pub matched: Match,
    /// When refcat first saw this vulnerability on this package.
    pub first_seen: Option<String>,
}

/// The newest Grype result on one platform manifest, as a view may show it.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// The Grype artifact judged, with its verdict; `None` when there is none.
    pub judged: Option<Judged>,
    /// Its matches, when they may be shown.
    pub matches: Option<Shown<Vec<Match>>>,
    /// When refcat first saw each (vulnerability, package), from its record.
    pub first_seen: BTreeMap<(String, String), String>,
}

fn first_seen_of(record: VulnerabilityRecord) -> BTreeMap<(String, String), String> {
    record
        .vulnerabilities
        .into_iter()
        .map(|e| ((e.id, e.package), e.first_seen))
        .collect()
}

/// The newest Grype result on `digest` that `trust` lets a view show.
pub async fn scan(
    client: &Client,
    repository: &RepositoryName,
    digest: &Digest,
    trust: &Trust,
) -> Result<Scan, CatalogError> {
    let judged = super::artifacts::newest(client, repository, digest, &[Format::GrypeJson], trust)
        .await?
        .pop()
        .flatten();
    let Some(content) = judged.as_ref().and_then(Judged::content) else {
        return Ok(Scan {
            judged,
            ..Scan::default()
        });
    };
    let (data, record) = tokio::join!(
        content.layer(client, GRYPE_JSON),
        content.layer(client, VULNERABILITY_RECORD),
    );
    let data = data?.ok_or_else(|| {
        CatalogError::stored(content.artifact().to_string(), "no Grype JSON layer")
    })?;
    let matches = data
        .try_map(|d| report::matches(&d))
        .map_err(|e| CatalogError::stored(content.artifact().to_string(), e))?;
    // A record that cannot be read only costs the dates.
    let first_seen = match record {
        Ok(Some(record)) => record
            .try_map(|r| serde_json::from_slice::<VulnerabilityRecord>(&r))
            .map(|r| r.map(first_seen_of).get().clone())
            .unwrap_or_default(),
        _ => BTreeMap::new(),
    };
    Ok(Scan {
        judged,
        matches: Some(matches),
        first_seen,
    })
}

/// The vulnerabilities view of `reference`.
pub async fn vulnerabilities(
    client: &Client,
    reference: &Reference,
    query: &VulnerabilityQuery,
    trust: &Trust,
) -> Result<VulnerabilitiesView, CatalogError> {
    let repository = &reference.repository;
    // Platforms are read at once: a slow registry costs one wait per step, not per
    // platform.
    let (_, read) = with_each_platform(client, reference, |digest| async move {
        let found = scan(client, repository, &digest, trust).await?;
        let content = found.judged.as_ref().and_then(Judged::content);
        let entries = found.matches.as_ref().map(|matches| {
            let mut entries: Vec<VulnerabilityEntry> = matches
                .get()
                .iter()
                .filter(|m| query.severity.is_none_or(|s| m.severity == s))
                .map(|m| VulnerabilityEntry {
                    first_seen: found
                        .first_seen
                        .get(&(m.id.clone(), m.package.clone()))
                        .cloned(),
                    matched: m.clone(),
                })
                .collect();
            if let Some(order) = query.sort {
                order.sort(&mut entries);
            }
            entries
        });
        let annotation = |key: &str| {
            content
                .and_then(|c| c.get().annotation(key))
                .map(str::to_string)
        };
        Ok::<_, CatalogError>(VulnerabilityPlatform {
            digest: digest.to_string(),
            artifact: found.judged.as_ref().map(|j| j.artifact().to_string()),
            scanned_at: annotation(CREATED),
            db_built: annotation(GRYPE_DB_BUILT),
            signature: found.judged.as_ref().map(|j| j.verdict().clone()),
            totals: found.matches.as_ref().map(|m| report::counts(m.get())),
            matches: entries,
        })
    })
    .await?;
    Ok(VulnerabilitiesView {
        reference: reference.to_string(),
        platforms: read
            .into_iter()
            .map(|(subject, platform)| (subject.platform.to_string(), platform))
            .collect(),
    })
}
