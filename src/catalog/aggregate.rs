//! The catalog-wide vulnerability aggregate: every vulnerability on the default and
//! floating tags of every repository. The worker stores it as a signed artifact
//! (tagged `refcat-aggregate` in a repository of its own), so the API answers with one
//! manifest and one blob fetch; without one, the API walks the registry.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{stream, StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};

use super::directory::default_tag;
use super::repositories::{unreadable_as_none, Repositories};
use super::signatures::Trust;
use super::stored::StoredDocument;
use super::tags::tags;
use super::vulnerabilities::{vulnerabilities, VulnerabilityQuery};
use super::CatalogError;
use crate::media_types::CATALOG_AGGREGATE;
use crate::reference::{Reference, RepositoryName, Target, AGGREGATE_TAG};
use crate::registry::Client;
use crate::scan::report::Severity;

/// Repositories walked at once.
const CONCURRENCY: usize = 8;

/// The aggregate stored in `stored_in` when there is a usable one (signed, when `trust`
/// requires it), else computed live.
pub async fn read(
    client: &Client,
    preferred: Option<&str>,
    trust: &Trust,
    repositories: &Repositories,
) -> Result<Aggregate, CatalogError> {
    if let Some(repository) = repositories.aggregate() {
        // A caller reading with their own credentials sees only the repositories they
        // may read, which the worker's aggregate does not know of.
        let stored = match client.serves_a_caller() {
            true => None,
            false => Box::pin(stored(client, repository, trust)).await?,
        };
        if let Some(found) = stored {
            return Ok(Aggregate {
                source: AggregateSource::Artifact,
                created: found.created,
                data: found.data,
            });
        }
    }
    Ok(Aggregate {
        source: AggregateSource::Live,
        created: None,
        data: Box::pin(compute(client, preferred, trust, repositories)).await?,
    })
}

/// An aggregate the worker stored.
pub type StoredAggregate = StoredDocument<AggregateData>;

/// The stored aggregate; `None` when there is none, or when `trust` has keys and its
/// signature does not verify with them (which is logged).
pub async fn stored(
    client: &Client,
    repository: &RepositoryName,
    trust: &Trust,
) -> Result<Option<StoredAggregate>, CatalogError> {
    super::stored::read(client, repository, AGGREGATE_TAG, CATALOG_AGGREGATE, trust).await
}

/// The catalog-wide aggregate, as served: the document and where it came from.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Aggregate {
    /// `artifact` when read from the worker's stored aggregate, `live` when computed
    /// for this request.
    pub source: AggregateSource,
    /// When the stored aggregate was made (`artifact` only).
    pub created: Option<String>,
    /// The document.
    #[serde(flatten)]
    pub data: AggregateData,
}

/// Where an aggregate came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AggregateSource {
    /// The artifact the worker stored.
    Artifact,
    /// Walked from the registry for this request.
    Live,
}

/// The aggregate over every repository's default and floating tags: what the worker
/// stores and what `/v1/vulnerabilities` serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AggregateData {
    /// Distinct vulnerabilities per severity.
    pub totals: BTreeMap<Severity, usize>,
    /// Per vulnerability id, most severe first.
    pub vulnerabilities: Vec<AggregateEntry>,
}

/// One vulnerability across the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AggregateEntry {
    /// Vulnerability id.
    pub id: String,
    /// Its severity.
    pub severity: Severity,
    /// Affected repositories and the tags where it shows.
    pub affected: BTreeMap<String, BTreeSet<String>>,
}

/// Walks the covered repositories for the aggregate. A repository that cannot be read
/// (gone, or not the reader's to read) is left out.
pub async fn compute(
    client: &Client,
    preferred: Option<&str>,
    trust: &Trust,
    repositories: &Repositories,
) -> Result<AggregateData, CatalogError> {
    let listed = Box::pin(repositories.list(client)).await?.repositories;
    let per_repository: Vec<Vec<(String, String, Severity, String)>> = stream::iter(listed)
        .map(|repository| async move {
            let view = match unreadable_as_none(tags(client, &repository, trust).await)? {
                Some(view) => view,
                None => return Ok(Vec::new()),
            };
            let default = default_tag(&view, preferred).map(|t| t.tag.clone());
            let mut hits = Vec::new();
            for entry in view
                .tags
                .iter()
                .filter(|t| t.floating || Some(&t.tag) == default.as_ref())
            {
                let reference = Reference {
                    registry: client.registry().to_string(),
                    repository: repository.clone(),
                    target: Target::Tag(entry.tag.parse().expect("listed tags parse")),
                };
                let found =
                    vulnerabilities(client, &reference, &VulnerabilityQuery::default(), trust)
                        .await?;
                for platform in found.platforms.into_values() {
                    for m in platform.matches {
                        hits.push((
                            m.matched.id,
                            repository.to_string(),
                            m.matched.severity,
                            entry.tag.clone(),
                        ));
                    }
                }
            }
            Ok::<_, CatalogError>(hits)
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut by_id: BTreeMap<String, AggregateEntry> = BTreeMap::new();
    for (id, repository, severity, tag) in per_repository.into_iter().flatten() {
        let entry = by_id.entry(id.clone()).or_insert_with(|| AggregateEntry {
            id,
            severity,
            affected: BTreeMap::new(),
        });
        entry.severity = entry.severity.min(severity);
        entry.affected.entry(repository).or_default().insert(tag);
    }
    let mut vulnerabilities: Vec<AggregateEntry> = by_id.into_values().collect();
    vulnerabilities.sort_by(|a, b| (a.severity, &a.id).cmp(&(b.severity, &b.id)));
    let mut totals: BTreeMap<Severity, usize> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
    for v in &vulnerabilities {
        *totals.entry(v.severity).or_default() += 1;
    }
    Ok(AggregateData {
        totals,
        vulnerabilities,
    })
}
