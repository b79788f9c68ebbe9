//! The tags view: every tag of a repository with its platforms, their `created`, and
//! vulnerability counts read from the Grype artifact's manifest annotations (which its
//! signature covers; no blob fetch).

use std::collections::{BTreeMap, HashSet};

use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};

use super::error::about_the_tag_alone;
use super::image::manifest_and_config;
use super::platforms::with_each_platform;
use super::summary::RepositorySummary;
use super::CatalogError;
use crate::artifact::annotations::{CREATED, VULNERABILITIES_PREFIX};
use crate::artifact::Format;
use crate::reference::{Reference, RepositoryName, Tag, Target};
use crate::registry::Client;
use crate::scan::report::Severity;
use crate::trust::{Checking, Judged, Trust};

/// Tags resolved at once; each fans out to its platforms, so the registry sees at most
/// this many times the platform count in flight from one view.
const TAG_CONCURRENCY: usize = 16;

/// Tags on a page unless the caller asks for another size.
pub const TAGS_PER_PAGE: usize = 100;
/// The most tags one page holds: each costs registry round trips.
const MAX_TAGS_PER_PAGE: usize = 1000;

/// Paging for the tags view. Tags are sorted as the registry lists them and cut into
/// pages before any is resolved, so a page costs what its tags cost, whatever the
/// repository holds.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TagsQuery {
    /// 1-based page.
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<usize>,
    /// Tags per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub per_page: Option<usize>,
}

impl TagsQuery {
    fn checked(&self) -> Result<(usize, usize), CatalogError> {
        CatalogError::check_range("page", self.page, 1_000_000)?;
        CatalogError::check_range("per_page", self.per_page, MAX_TAGS_PER_PAGE)?;
        Ok((
            self.page.unwrap_or(1),
            self.per_page.unwrap_or(TAGS_PER_PAGE),
        ))
    }
}

/// One page of a repository's tags.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagsView {
    /// The repository.
    pub repository: String,
    /// `checked` with keys; `not-checked` when the catalog runs without them.
    pub signatures: Checking,

    /// Tags listed in the repository, on every page (tags that hold signatures or
    /// referrers indexes are not counted).
    pub total: usize,
    /// This page.
    pub page: usize,
    /// Page size.
    pub per_page: usize,
    /// This page's image tags, sorted.
    pub tags: Vec<TagEntry>,
    /// Tags of this page left out, with why: not an image (a Helm chart, an `oras
    /// push`), deleted while the view was read, or an image whose manifests refcat
    /// cannot read.
    pub skipped: Vec<SkippedTag>,
}

impl TagsView {
    /// How many pages there are (at least one, which may be empty).
    pub fn pages(&self) -> usize {
        self.total.div_ceil(self.per_page.max(1)).max(1)
    }
}

/// A tag the view leaves out.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedTag {
    /// The tag.
    pub tag: String,
    /// Why it is left out.
    pub reason: String,
}

/// One tag.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagEntry {
    /// The tag.
    pub tag: String,
    /// What it points at.
    pub digest: String,
    /// The media type of that manifest or index.
    pub media_type: String,
    /// Whether it moves: another tag extends it (`S` when `S-…` or `S.…` exists).
    pub floating: bool,
    /// The earliest `created` across its platforms.
    pub oldest_created: Option<String>,
    /// Matches per severity, summed over platforms; `None` unless every platform has a
    /// result a view may show.
    pub vulnerabilities: Option<BTreeMap<Severity, usize>>,
    /// Its platforms.
    pub platforms: Vec<TagPlatform>,
}

/// One platform of a tag.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagPlatform {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: String,
    /// The config's `created`.
    pub created: Option<String>,
    /// When the newest Grype artifact was made.
    pub scanned_at: Option<String>,
    /// Matches per severity from the newest Grype artifact's annotations.
    pub vulnerabilities: Option<BTreeMap<Severity, usize>>,
    /// Whether a Syft JSON artifact exists (and, with `--require-signature`, verifies).
    pub sbom: bool,
    /// Whether the newest Syft JSON and Grype artifacts both carry a signature that
    /// verifies with the configured keys; `None` when no keys are configured.
    pub signed: Option<bool>,
}

/// Per-severity counts from a Grype artifact's annotations.
pub fn counts_from_annotations(
    annotations: &BTreeMap<String, String>,
) -> BTreeMap<Severity, usize> {
    Severity::ALL
        .iter()
        .map(|s| {
            let n = annotations
                .get(&format!("{VULNERABILITIES_PREFIX}{s}"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            (*s, n)
        })
        .collect()
}

/// The floating tags of `all`: those another tag extends (`3.19` by `3.19.1` or
/// `3.19-r1`). Each tag names the streams it extends by its own prefixes that end before a
/// `-` or `.`, so one pass over every tag's characters finds them all, where comparing
/// every pair would cost the square of the tag count.
pub(super) fn floating(all: &[Tag]) -> HashSet<&str> {
    let names: HashSet<&str> = all.iter().map(Tag::as_str).collect();
    let mut floating = HashSet::new();
    for tag in &names {
        // A separator that ends the tag extends nothing (see `reference::in_stream`).
        for (at, _) in tag
            .match_indices(['-', '.'])
            .filter(|(at, _)| at + 1 < tag.len())
        {
            if let Some(stream) = names.get(&tag[..at]) {
                floating.insert(*stream);
            }
        }
    }
    floating
}

/// The page of the tags view of `repository` on `client`'s registry that `query` asks
/// for. Tags that hold referrers indexes or signatures are not images and are left out.
/// Where the worker stored the repository's summary in `stored_in`, a tag that still
/// names the image the summary holds costs one `HEAD`.
pub async fn tags(
    client: &Client,
    repository: &RepositoryName,
    query: &TagsQuery,
    trust: &Trust,
    stored_in: Option<&RepositoryName>,
) -> Result<TagsView, CatalogError> {
    let (page, per_page) = query.checked()?;
    // Boxed: a view's future nests deep, and serve's threads have bounded stacks.
    let (all, summary) = tokio::join!(
        listed(client, repository),
        Box::pin(super::summary::for_view(
            client, stored_in, repository, trust
        )),
    );
    let all = all?;
    let chosen: Vec<&Tag> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let paging = (page, per_page);
    Box::pin(read(
        client,
        repository,
        &all,
        &chosen,
        trust,
        paging,
        summary.as_ref(),
    ))
    .await
}

/// The tags of `repository` that `keep` selects, resolved on one page; floating is
/// judged against every tag. For views over a whole repository (its default tag, the
/// aggregate's walk) or a stream.
pub async fn selected(
    client: &Client,
    repository: &RepositoryName,
    trust: &Trust,
    keep: impl Fn(&Tag) -> bool,
) -> Result<TagsView, CatalogError> {
    let all = listed(client, repository).await?;
    let chosen: Vec<&Tag> = all.iter().filter(|t| keep(t)).collect();
    let paging = (1, all.len().max(1));
    read(client, repository, &all, &chosen, trust, paging, None).await
}

/// The tags of `repository` that may name images, sorted.
async fn listed(client: &Client, repository: &RepositoryName) -> Result<Vec<Tag>, CatalogError> {
    let mut all = client.list_tags(repository, None).await?;
    all.retain(|t| !t.is_supporting());
    Ok(all)
}

/// The view of the `chosen` tags out of `all` (which floating is judged against), on
/// page `paging` (page, size), from `summary` where it holds a tag's image.
async fn read(
    client: &Client,
    repository: &RepositoryName,
    all: &[Tag],
    chosen: &[&Tag],
    trust: &Trust,
    (page, per_page): (usize, usize),
    summary: Option<&RepositorySummary>,
) -> Result<TagsView, CatalogError> {
    let limit = tokio::sync::Semaphore::new(TAG_CONCURRENCY);
    let floating = floating(all);
    let (limit, floating) = (&limit, &floating);
    let read = try_join_all(chosen.iter().map(|tag| async move {
        let _permit = limit
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let floating = floating.contains(tag.as_str());
        let target = Target::Tag((*tag).clone());
        let found = match summary.filter(|s| s.tags.contains_key(tag.as_str())) {
            Some(summary) => summarised(client, repository, summary, tag, floating, trust).await,
            None => entry(client, repository, target, tag.as_str(), floating, trust).await,
        };
        match found {
            Ok(entry) => Ok(Ok(entry)),
            Err(e) if about_the_tag_alone(&e) => {
                tracing::debug!(%repository, %tag, error = %e, "tag left out of the tags view");
                Ok(Err(SkippedTag {
                    tag: tag.to_string(),
                    reason: e.to_string(),
                }))
            }
            Err(e) => Err(e),
        }
    }))
    .await?;
    let (mut tags, mut skipped) = (Vec::new(), Vec::new());
    for outcome in read {
        match outcome {
            Ok(entry) => tags.push(entry),
            Err(skip) => skipped.push(skip),
        }
    }
    Ok(TagsView {
        repository: repository.to_string(),
        signatures: trust.signatures(),
        total: all.len(),
        page,
        per_page,
        tags,
        skipped,
    })
}

/// The entry of `tag` from `summary` when the tag still names the image the summary
/// holds for it (one `HEAD`); else read from the registry.
async fn summarised(
    client: &Client,
    repository: &RepositoryName,
    summary: &RepositorySummary,
    tag: &Tag,
    floating: bool,
    trust: &Trust,
) -> Result<TagEntry, CatalogError> {
    let target = Target::Tag(tag.clone());
    // A tag gone since it was listed is left to `entry`, which says so.
    if let Some(head) = client.head_manifest(repository, &target).await? {
        let digest = head.digest.to_string();
        if summary.tags.get(tag.as_str()) == Some(&digest) {
            let signatures = trust.signatures();
            if let Some(found) = from_summary(summary, tag.as_str(), &digest, floating, signatures)
            {
                return Ok(found);
            }
        }
    }
    entry(client, repository, target, tag.as_str(), floating, trust).await
}

/// The tag entry of `tag` (which names `digest`): the tags view's, from the
/// summary. `signatures` says whether the summary verified, so its results did.
pub fn from_summary(
    summary: &RepositorySummary,
    tag: &str,
    digest: &str,
    floating: bool,
    signatures: Checking,
) -> Option<TagEntry> {
    let image = summary.images.get(digest)?;
    let platforms: Vec<TagPlatform> = image
        .platforms
        .iter()
        .map(|p| TagPlatform {
            platform: p.platform.clone(),
            digest: p.digest.clone(),
            created: p.created.clone(),
            scanned_at: p.scanned_at.clone(),
            vulnerabilities: p.counts(),
            sbom: p.sboms.contains(Format::SyftJson.as_str()),
            signed: (signatures == Checking::Checked)
                .then(|| p.matches.is_some() && p.sboms.contains(Format::SyftJson.as_str())),
        })
        .collect();
    let vulnerabilities = platforms
        .iter()
        .map(|p| p.vulnerabilities.as_ref())
        .try_fold(BTreeMap::new(), |mut sum: BTreeMap<Severity, usize>, c| {
            for (s, n) in c? {
                *sum.entry(*s).or_default() += n;
            }
            Some(sum)
        })
        .filter(|_| !platforms.is_empty());
    Some(TagEntry {
        tag: tag.to_string(),
        digest: digest.to_string(),
        media_type: image.media_type.clone(),
        floating,
        oldest_created: platforms.iter().filter_map(|p| p.created.clone()).min(),
        vulnerabilities,
        platforms,
    })
}

/// The tags view over every tag, from the summary alone.
pub fn summary_view(summary: &RepositorySummary, signatures: Checking) -> TagsView {
    let names: Vec<Tag> = summary.tags.keys().filter_map(|t| t.parse().ok()).collect();
    let floats = floating(&names);
    // Only what parses as a tag: views later name tags as `Tag`s.
    let tags = summary
        .tags
        .iter()
        .filter(|(tag, _)| tag.parse::<Tag>().is_ok())
        .filter_map(|(tag, digest)| {
            from_summary(
                summary,
                tag,
                digest,
                floats.contains(tag.as_str()),
                signatures,
            )
        })
        .collect();
    TagsView {
        repository: summary.repository.clone(),
        signatures,
        total: summary.listed,
        page: 1,
        per_page: summary.tags.len().max(1),
        tags,
        skipped: Vec::new(),
    }
}

/// The entry of the image at `target`, listed under `name`.
pub async fn entry(
    client: &Client,
    repository: &RepositoryName,
    target: Target,
    name: &str,
    floating: bool,
    trust: &Trust,
) -> Result<TagEntry, CatalogError> {
    let reference = Reference {
        registry: client.registry().to_string(),
        repository: repository.clone(),
        target,
    };
    // One fetch of the tag gives both its descriptor and its platforms; each platform's
    // config is read while its artifacts are: independent round trips overlap, so a slow
    // registry costs one wait, not two.
    let (top, read) = with_each_platform(client, &reference, |digest| async move {
        let formats = [Format::GrypeJson, Format::SyftJson];
        let ((_, config), judged) = tokio::try_join!(
            manifest_and_config(client, repository, &digest),
            super::artifacts::newest(client, repository, &digest, &formats, trust),
        )?;
        let [grype, syft] = <[Option<Judged>; 2]>::try_from(judged).expect("two formats asked");
        Ok::<_, CatalogError>((config, grype, syft))
    })
    .await?;
    let platforms: Vec<TagPlatform> = read
        .into_iter()
        .map(|(subject, (config, grype, syft))| {
            let signed = trust.checks().then(|| {
                [&grype, &syft]
                    .iter()
                    .all(|a| a.as_ref().is_some_and(|a| a.verdict().is_verified()))
            });
            let grype = grype.as_ref().and_then(Judged::content);
            let syft = syft.as_ref().and_then(Judged::content);
            TagPlatform {
                platform: subject.platform.to_string(),
                digest: subject.descriptor.digest.to_string(),
                created: config.created.clone(),
                scanned_at: grype
                    .and_then(|g| g.get().annotation(CREATED))
                    .map(str::to_string),
                vulnerabilities: grype
                    .map(|g| counts_from_annotations(&g.get().descriptor().annotations)),
                sbom: syft.is_some(),
                signed,
            }
        })
        .collect();
    // Known for the tag only when known for every platform: a sum over some of them
    // would read as the whole.
    let vulnerabilities = platforms
        .iter()
        .map(|p| p.vulnerabilities.as_ref())
        .try_fold(
            BTreeMap::new(),
            |mut sum: BTreeMap<Severity, usize>, counts| {
                for (s, n) in counts? {
                    *sum.entry(*s).or_default() += n;
                }
                Some(sum)
            },
        )
        .filter(|_| !platforms.is_empty());
    Ok(TagEntry {
        tag: name.to_string(),
        digest: top.digest.to_string(),
        media_type: top.media_type,
        floating,
        oldest_created: platforms.iter().filter_map(|p| p.created.clone()).min(),
        vulnerabilities,
        platforms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_floats_when_another_extends_it() {
        let all: Vec<Tag> = ["3", "3.19", "3.19.1", "12", "bookworm", "1-rc"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        let floats = floating(&all);
        let floats: Vec<&str> = all
            .iter()
            .map(Tag::as_str)
            .filter(|t| floats.contains(t))
            .collect();
        assert_eq!(floats, ["3", "3.19"]);
    }

    #[test]
    fn thousands_of_tags_float_as_their_pairs_say() {
        // Versions 1.0.0 to 7.19.19 and their streams, plus suffixed builds and tags
        // that only look alike (`1.0x` does not extend `1.0`).
        let mut names = Vec::new();
        for major in 1..=7 {
            names.push(format!("{major}"));
            for minor in 0..20 {
                names.push(format!("{major}.{minor}"));
                for patch in 0..20 {
                    names.push(format!("{major}.{minor}.{patch}"));
                }
                names.push(format!("{major}.{minor}-rc"));
                names.push(format!("{major}.{minor}x"));
            }
        }
        let all: Vec<Tag> = names.iter().map(|t| t.parse().unwrap()).collect();
        assert!(all.len() > 3000, "{}", all.len());
        let floats = floating(&all);
        // Every major and minor stream floats, and nothing else does: what comparing
        // every pair says.
        assert_eq!(floats.len(), 7 + 7 * 20);
        let by_pairs: HashSet<&str> = all
            .iter()
            .map(Tag::as_str)
            .filter(|tag| {
                all.iter().any(|other| {
                    other.as_str() != *tag && crate::reference::in_stream(other.as_str(), tag)
                })
            })
            .collect();
        assert_eq!(floats, by_pairs);
    }
}
