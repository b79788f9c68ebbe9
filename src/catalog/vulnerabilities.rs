//! The vulnerabilities view: per-platform matches from the newest Grype artifact, with
//! refcat's `first_seen`, filtered by severity, with totals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::artifacts::{layer, newest_trusted, prefetch, Trusted};
use super::existing::Existing;
use super::platforms::with_each_platform;
use super::signatures::{Trust, Verdict};
use super::CatalogError;
use crate::artifact::annotations::{CREATED, GRYPE_DB_BUILT};
use crate::catalog::existing::Format;
use crate::media_types::{GRYPE_JSON, VULNERABILITY_RECORD};
use crate::records::VulnerabilityRecord;
use crate::reference::Reference;
use crate::registry::Client;
use crate::scan::report::{self, Match, Severity};

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

/// One platform's matches.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VulnerabilityPlatform {
    /// The platform manifest's digest.
    pub digest: String,
    /// The Grype artifact read; `None` when the platform was not scanned yet (or, with
    /// `--require-signature`, has no result whose signature verifies).
    pub artifact: Option<String>,
    /// Its signature verdict; `None` when no keys are configured.
    pub signature: Option<Verdict>,
    /// When it was made.
    pub scanned_at: Option<String>,
    /// When its Grype DB was built.
    pub db_built: Option<String>,
    /// All matches per severity, before filtering.
    pub totals: BTreeMap<Severity, usize>,
    /// The matches that pass the filter.
    pub matches: Vec<VulnerabilityEntry>,
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

/// The vulnerabilities view of `reference`.
pub async fn vulnerabilities(
    client: &Client,
    reference: &Reference,
    query: &VulnerabilityQuery,
    trust: &Trust,
) -> Result<VulnerabilitiesView, CatalogError> {
    let repository = &reference.repository;
    // Platforms are read at once, and each result's layers while its signature is
    // checked: a slow registry costs one wait per step, not per platform or layer.
    let (_, read) = with_each_platform(client, reference, |digest| async move {
        let found = Existing::read(client, repository, &digest).await?;
        let (trusted, ()) = tokio::join!(
            newest_trusted(client, repository, &found, Format::GrypeJson, trust),
            prefetch(
                client,
                repository,
                found.grype.first(),
                &[GRYPE_JSON, VULNERABILITY_RECORD]
            ),
        );
        let trusted = trusted?;
        let artifact = trusted.as_ref().and_then(Trusted::content);
        let (matches, first_seen) = match artifact {
            Some(artifact) => {
                let (data, record) = tokio::join!(
                    layer(client, repository, artifact, GRYPE_JSON),
                    layer(client, repository, artifact, VULNERABILITY_RECORD),
                );
                let matches = report::matches(&data?)
                    .map_err(|e| CatalogError::stored(artifact.digest().to_string(), e))?;
                let record = record
                    .ok()
                    .and_then(|r| serde_json::from_slice::<VulnerabilityRecord>(&r).ok());
                let first_seen: BTreeMap<(String, String), String> = record
                    .map(|r| {
                        r.vulnerabilities
                            .into_iter()
                            .map(|e| ((e.id, e.package), e.first_seen))
                            .collect()
                    })
                    .unwrap_or_default();
                (matches, first_seen)
            }
            None => (Vec::new(), BTreeMap::new()),
        };
        let totals = report::counts(&matches);
        let mut entries: Vec<VulnerabilityEntry> = matches
            .into_iter()
            .filter(|m| query.severity.is_none_or(|s| m.severity == s))
            .map(|m| VulnerabilityEntry {
                first_seen: first_seen.get(&(m.id.clone(), m.package.clone())).cloned(),
                matched: m,
            })
            .collect();
        if let Some(order) = query.sort {
            order.sort(&mut entries);
        }
        Ok::<_, CatalogError>(VulnerabilityPlatform {
            digest: digest.to_string(),
            artifact: trusted.as_ref().map(|t| t.artifact.digest().to_string()),
            scanned_at: artifact
                .and_then(|a| a.annotation(CREATED))
                .map(str::to_string),
            db_built: artifact
                .and_then(|a| a.annotation(GRYPE_DB_BUILT))
                .map(str::to_string),
            signature: trusted.and_then(|t| t.verdict),
            totals,
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
