//! The catalog-wide vulnerability aggregate: every vulnerability on the default and
//! floating tags of every repository. The worker stores it as a signed artifact
//! (tagged `refcat-aggregate` in a repository of its own), so the API answers with one
//! manifest and one blob fetch; without one, the API walks the registry.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{stream, StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};

use super::directory::default_tag;
use super::error::about_the_tag_alone;
use super::platforms::platform_manifests;
use super::repositories::{unreadable_as_none, Repositories};
use super::stored::StoredDocument;
use super::summary::{RepositorySummary, SummaryMatch};
use super::tags::{selected, summary_view};
use super::vulnerabilities::scan;
use super::CatalogError;
use crate::media_types::CATALOG_AGGREGATE;
use crate::reference::{Reference, RepositoryName, Target, AGGREGATE_TAG};
use crate::registry::Client;
use crate::scan::report::{Match, Severity};
use crate::trust::{Checking, Shown, Trust, Verified};

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
                signatures: trust.signatures(),
                source: AggregateSource::Artifact,
                created: found.created,
                data: found.document.get().clone(),
            });
        }
    }
    Ok(Aggregate {
        signatures: trust.signatures(),
        source: AggregateSource::Live,
        created: None,
        data: Box::pin(compute(client, preferred, trust, repositories)).await?,
    })
}

/// An aggregate the worker stored.
pub type StoredAggregate = StoredDocument<AggregateData>;

/// The stored aggregate; `None` when there is none, or when `trust` checks signatures
/// and its signature does not verify (which is logged).
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
    /// `checked` with keys; `not-checked` when the catalog runs without them.
    pub signatures: Checking,
    /// The document.
    #[serde(flatten)]
    pub data: AggregateData,
}

impl Aggregate {
    /// Roughly how many bytes it holds, for cache budgets.
    pub fn weight(&self) -> usize {
        self.data
            .vulnerabilities
            .iter()
            .map(|v| {
                let tags: usize = v.affected.values().flatten().map(String::len).sum();
                v.id.len() + v.affected.keys().map(String::len).sum::<usize>() + tags + 64
            })
            .sum()
    }
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
    /// Distinct vulnerabilities per severity among the tags with results; `null` when
    /// there are tags and none has a result a view may show (unknown, not zero).
    pub totals: Option<BTreeMap<Severity, usize>>,
    /// How many default and floating tags there are, and how many of them have a result
    /// on every platform: what the totals are made of.
    #[serde(default)]
    pub coverage: Coverage,
    /// Per vulnerability id, most severe first.
    pub vulnerabilities: Vec<AggregateEntry>,
}

/// What an aggregate covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    /// Default and floating tags across the covered repositories.
    pub tags: usize,
    /// Those with a result a view may show on every platform.
    pub scanned: usize,
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

/// One tag's matches on one platform, as `trust` lets a view show them.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The repository.
    pub repository: String,
    /// The default or floating tag.
    pub tag: String,
    /// The platform manifest's newest Grype result's matches.
    pub matches: Shown<Vec<Match>>,
}

/// The aggregate built from verified results alone: the only kind the worker signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAggregate(AggregateData);

impl VerifiedAggregate {
    /// Folds `hits`, each verified, into the aggregate over what `coverage` says.
    pub fn of(hits: &[(String, String, Verified<Vec<Match>>)], coverage: Coverage) -> Self {
        VerifiedAggregate(AggregateData::of(
            hits.iter().flat_map(|(r, t, m)| {
                m.get()
                    .iter()
                    .map(move |m| (r.as_str(), t.as_str(), m.id.as_str(), m.severity))
            }),
            coverage,
        ))
    }

    /// The aggregate over `summaries`, each verified: what their default and floating
    /// tags' results hold, with no registry request.
    pub fn of_summaries(
        summaries: &[Verified<RepositorySummary>],
        preferred: Option<&str>,
    ) -> Self {
        let mut coverage = Coverage::default();
        let mut found = Vec::new();
        for summary in summaries {
            let summary = summary.get();
            for (tag, platforms, every) in covered(summary, preferred) {
                coverage.tags += 1;
                coverage.scanned += usize::from(every);
                found.push((&summary.repository, tag, platforms));
            }
        }
        VerifiedAggregate(AggregateData::of(
            found.iter().flat_map(|(repository, tag, platforms)| {
                platforms.iter().flat_map(move |matches| {
                    matches.iter().map(move |m| {
                        (repository.as_str(), tag.as_str(), m.id.as_str(), m.severity)
                    })
                })
            }),
            coverage,
        ))
    }

    /// The document.
    pub fn data(&self) -> &AggregateData {
        &self.0
    }
}

impl AggregateData {
    /// Folds matches (repository, tag, id, severity) into the aggregate: distinct ids,
    /// each with its most severe severity and where it shows.
    fn of<'a>(
        hits: impl Iterator<Item = (&'a str, &'a str, &'a str, Severity)>,
        coverage: Coverage,
    ) -> Self {
        let mut by_id: BTreeMap<String, AggregateEntry> = BTreeMap::new();
        for (repository, tag, id, severity) in hits {
            let entry = by_id
                .entry(id.to_string())
                .or_insert_with(|| AggregateEntry {
                    id: id.to_string(),
                    severity,
                    affected: BTreeMap::new(),
                });
            entry.severity = entry.severity.min(severity);
            entry
                .affected
                .entry(repository.to_string())
                .or_default()
                .insert(tag.to_string());
        }
        let mut vulnerabilities: Vec<AggregateEntry> = by_id.into_values().collect();
        vulnerabilities.sort_by(|a, b| (a.severity, &a.id).cmp(&(b.severity, &b.id)));
        let mut totals: BTreeMap<Severity, usize> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
        for v in &vulnerabilities {
            *totals.entry(v.severity).or_default() += 1;
        }
        let known = coverage.scanned > 0 || coverage.tags == 0;
        AggregateData {
            totals: known.then_some(totals),
            coverage,
            vulnerabilities,
        }
    }
}

/// The matches of the tags the aggregate covers (the default and floating tags):
/// per tag, each platform's matches, and whether every platform has a result.
pub fn covered<'a>(
    summary: &'a RepositorySummary,
    preferred: Option<&str>,
) -> Vec<(String, Vec<&'a [SummaryMatch]>, bool)> {
    let view = summary_view(summary, Checking::NotChecked);
    let default = default_tag(&view, preferred).map(|t| t.tag.clone());
    view.tags
        .iter()
        .filter(|t| t.floating || Some(&t.tag) == default.as_ref())
        .filter_map(|t| {
            let image = summary.images.get(&t.digest)?;
            let matches: Vec<&[SummaryMatch]> = image
                .platforms
                .iter()
                .filter_map(|p| p.matches.as_deref())
                .collect();
            let every = matches.len() == image.platforms.len();
            Some((t.tag.clone(), matches, every))
        })
        .collect()
}

/// What a walk for the aggregate found.
#[derive(Clone, Debug)]
pub struct Walked {
    /// Each platform's matches, per tag.
    pub hits: Vec<Hit>,
    /// What they cover.
    pub coverage: Coverage,
}

/// The aggregate of what `trust` lets a view show, walked from the registry now.
pub async fn compute(
    client: &Client,
    preferred: Option<&str>,
    trust: &Trust,
    repositories: &Repositories,
) -> Result<AggregateData, CatalogError> {
    let walked = Box::pin(walk(client, preferred, trust, repositories)).await?;
    Ok(AggregateData::of(
        walked.hits.iter().flat_map(|h| {
            h.matches.get().iter().map(|m| {
                (
                    h.repository.as_str(),
                    h.tag.as_str(),
                    m.id.as_str(),
                    m.severity,
                )
            })
        }),
        walked.coverage,
    ))
}

/// Walks the covered repositories' default and floating tags for the results the
/// aggregate is made of. A repository that cannot be read (gone, or not the reader's to
/// read) is left out.
pub async fn walk(
    client: &Client,
    preferred: Option<&str>,
    trust: &Trust,
    repositories: &Repositories,
) -> Result<Walked, CatalogError> {
    let listed = Box::pin(repositories.list(client))
        .await?
        .into_repositories();
    let per_repository: Vec<(Vec<Hit>, Coverage)> = stream::iter(listed)
        .map(|repository| async move {
            let view = match unreadable_as_none(selected(client, &repository, trust, |_| true).await)? {
                Some(view) => view,
                None => return Ok((Vec::new(), Coverage::default())),
            };
            let default = default_tag(&view, preferred).map(|t| t.tag.clone());
            let (mut hits, mut coverage) = (Vec::new(), Coverage::default());
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
                // One tag whose result cannot be read (not an image, gone, a stored
                // document that does not parse) is left out; a failing registry fails.
                coverage.tags += 1;
                let found = async {
                    let (mut found, mut every) = (Vec::new(), true);
                    for platform in platform_manifests(client, &reference, None).await? {
                        let digest = &platform.descriptor.digest;
                        let matches = scan(client, &repository, digest, trust).await?.matches;
                        every &= matches.is_some();
                        found.extend(matches);
                    }
                    Ok::<_, CatalogError>((found, every))
                };
                match found.await {
                    Ok((found, every)) => {
                        coverage.scanned += usize::from(every);
                        hits.extend(found.into_iter().map(|matches| Hit {
                            repository: repository.to_string(),
                            tag: entry.tag.clone(),
                            matches,
                        }))
                    }
                    Err(e) if about_the_tag_alone(&e) => {
                        tracing::warn!(%repository, tag = %entry.tag, error = %e, "left out of the aggregate")
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, CatalogError>((hits, coverage))
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut walked = Walked {
        hits: Vec::new(),
        coverage: Coverage::default(),
    };
    for (hits, coverage) in per_repository {
        walked.hits.extend(hits);
        walked.coverage.tags += coverage.tags;
        walked.coverage.scanned += coverage.scanned;
    }
    Ok(walked)
}
