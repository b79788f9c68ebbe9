//! One vulnerability across the catalog: every repository, tag, platform and package
//! it affects. Where it shows comes from the catalog aggregate; each row comes from
//! that tag's vulnerabilities view, so it is the same signed, digest-checked match the
//! tag's own view shows.

use futures_util::{stream, StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use super::aggregate::{Aggregate, AggregateSource};
use super::vulnerabilities::{vulnerabilities, VulnerabilityQuery};
use super::CatalogError;
use crate::reference::{Reference, Target};
use crate::registry::Client;
use crate::scan::report::Severity;
use crate::trust::Trust;

/// Tags read at once.
const CONCURRENCY: usize = 8;

/// A vulnerability id as scanners name them: `CVE-2024-2511`, `GHSA-xxxx-xxxx-xxxx`,
/// `ALPINE-13661`. Letters, digits, `-`, `_`, `.` and `:`, at most 128.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VulnerabilityId(String);

impl std::str::FromStr for VulnerabilityId {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
        if s.is_empty() || s.len() > 128 || !s.chars().all(allowed) {
            return Err(CatalogError::Query(format!(
                "{s:?} is not a vulnerability id (letters, digits, '-', '_', '.', ':'; at most 128)"
            )));
        }
        Ok(VulnerabilityId(s.to_string()))
    }
}

impl VulnerabilityId {
    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Every place one vulnerability shows.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvisoryView {
    /// The vulnerability id.
    pub id: String,
    /// Its severity.
    pub severity: Severity,
    /// Where the list of affected tags came from.
    pub source: AggregateSource,
    /// Each affected package on each platform of each tag.
    pub affected: Vec<Affected>,
}

/// One affected package on one platform of one tag.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Affected {
    /// The repository.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The platform.
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: String,
    /// The package.
    pub package: String,
    /// Its installed version.
    pub version: String,
    /// Its package type (`apk`, `deb`, `npm`, …).
    pub package_type: String,
    /// Versions that fix it.
    pub fix_versions: Vec<String>,
    /// `fixed`, `not-fixed`, `wont-fix` or `unknown`.
    pub fix_state: String,
    /// When refcat first saw it on this image.
    pub first_seen: Option<String>,
}

/// The view of vulnerability `id`, from where `aggregate` says it shows; 404 when no
/// default or floating tag shows it.
pub async fn advisory(
    client: &Client,
    id: &VulnerabilityId,
    aggregate: &Aggregate,
    trust: &Trust,
) -> Result<AdvisoryView, CatalogError> {
    let entry = aggregate
        .data
        .vulnerabilities
        .iter()
        .find(|e| e.id == id.0)
        .ok_or_else(|| {
            CatalogError::NotFound(format!(
                "no default or floating tag in the catalog shows {}",
                id.0
            ))
        })?;
    let tags: Vec<(String, String)> = entry
        .affected
        .iter()
        .flat_map(|(repository, tags)| tags.iter().map(move |t| (repository.clone(), t.clone())))
        .collect();
    let query = VulnerabilityQuery::default();
    let rows: Vec<Vec<Affected>> = stream::iter(tags)
        .map(|(repository, tag)| {
            let query = &query;
            async move {
                let reference = Reference {
                    registry: client.registry().to_string(),
                    repository: repository
                        .parse()
                        .map_err(|e| CatalogError::stored(&repository, e))?,
                    target: Target::Tag(tag.parse().map_err(|e| CatalogError::stored(&tag, e))?),
                };
                let view = vulnerabilities(client, &reference, query, trust).await?;
                Ok::<_, CatalogError>(
                    view.platforms
                        .into_iter()
                        .flat_map(|(platform, p)| {
                            let (repository, tag) = (&repository, &tag);
                            p.matches
                                .into_iter()
                                .flatten()
                                .filter(|m| m.matched.id == id.0)
                                .map(move |m| Affected {
                                    repository: repository.clone(),
                                    tag: tag.clone(),
                                    platform: platform.clone(),
                                    digest: p.digest.clone(),
                                    package: m.matched.package,
                                    version: m.matched.version,
                                    package_type: m.matched.package_type,
                                    fix_versions: m.matched.fix_versions,
                                    fix_state: m.matched.fix_state,
                                    first_seen: m.first_seen,
                                })
                        })
                        .collect(),
                )
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(AdvisoryView {
        id: entry.id.clone(),
        severity: entry.severity,
        source: aggregate.source,
        affected: rows.into_iter().flatten().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_scanner_names_only() {
        for good in ["CVE-2024-2511", "GHSA-abcd-efgh-ijkl", "ALPINE:13661"] {
            assert!(good.parse::<VulnerabilityId>().is_ok(), "{good}");
        }
        for bad in ["", "../x", "CVE 1", "<script>", &"A".repeat(129)] {
            assert!(bad.parse::<VulnerabilityId>().is_err(), "{bad}");
        }
    }
}
