//! The directory of repositories and one repository's overview, built from the tags
//! view of each repository.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{stream, StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};

use super::details::details;
use super::repositories::{unreadable_as_none, Repositories};
use super::summary::for_view;
use super::tags::{selected, summary_view, TagEntry, TagsView};
use super::CatalogError;
use crate::reference::{Reference, RepositoryName, Tag, Target};
use crate::registry::Client;
use crate::scan::report::Severity;
use crate::trust::{Checking, Trust};

/// Repositories walked at once.
const CONCURRENCY: usize = 8;

/// Paging for the directory.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DirectoryQuery {
    /// 1-based page.
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<usize>,
    /// Repositories per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub per_page: Option<usize>,
    /// Only repositories whose name contains this (case-insensitive).
    #[param(max_length = 256)]
    pub q: Option<String>,
    /// Only repositories whose default tag has this architecture: a `GOARCH` name
    /// (`amd64`, `arm64`, …); any other value is refused with 400.
    #[param(
        max_length = 64,
        pattern = "^(386|amd64|amd64p32|arm|armbe|arm64|arm64be|loong64|mips|mipsle|mips64|mips64le|mips64p32|mips64p32le|ppc|ppc64|ppc64le|riscv|riscv64|s390|s390x|sparc|sparc64|wasm)$"
    )]
    pub architecture: Option<String>,
    /// Only repositories whose default tag is (`true`) or is not (`false`) signed.
    pub signed: Option<bool>,
    /// Only repositories whose default tag's most severe match has this severity.
    pub highest: Option<Severity>,
}

impl DirectoryQuery {
    /// Whether a filter needs each repository's summary (so every repository is
    /// summarised before the page is cut).
    fn filters_summaries(&self) -> bool {
        self.architecture.is_some() || self.signed.is_some() || self.highest.is_some()
    }

    fn keeps(&self, image: &ImageSummary) -> bool {
        self.architecture
            .as_ref()
            .is_none_or(|a| image.architectures.contains(a))
            && self.signed.is_none_or(|s| image.signed == Some(s))
            && self.highest.is_none_or(|h| image.highest() == Some(h))
    }
}

/// Every repository, summarised.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    /// Repositories in the registry.
    pub total: usize,
    /// `checked` with keys; `not-checked` when the catalog runs without them.
    pub signatures: Checking,

    /// This page.
    pub page: usize,
    /// Page size.
    pub per_page: usize,
    /// The summaries on this page.
    pub images: Vec<ImageSummary>,
}

/// One repository at a glance, from its default tag.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// The repository.
    pub name: String,
    /// `org.opencontainers.image.title`.
    pub title: Option<String>,
    /// `org.opencontainers.image.description`.
    pub description: Option<String>,
    /// `org.opencontainers.image.source`.
    pub source: Option<String>,
    /// `org.opencontainers.image.licenses`.
    pub licenses: Option<String>,
    /// The tag the summary describes.
    pub default_tag: Option<String>,
    /// Its architectures.
    pub architectures: Vec<String>,
    /// Its earliest `created`.
    pub oldest_created: Option<String>,
    /// Its matches per severity, summed over platforms. With keys configured, counted
    /// only from results whose signature verifies.
    pub vulnerabilities: Option<BTreeMap<Severity, usize>>,
    /// Whether every platform's newest SBOM and scan verify with the configured keys;
    /// `None` when no keys are configured.
    pub signed: Option<bool>,
    /// How many tags the repository lists (tags that hold signatures or referrers
    /// indexes not counted).
    pub tag_count: usize,
}

impl ImageSummary {
    /// The most severe severity among its matches.
    pub fn highest(&self) -> Option<Severity> {
        let counts = self.vulnerabilities.as_ref()?;
        Severity::ALL
            .into_iter()
            .find(|s| counts.get(s).is_some_and(|n| *n > 0))
    }
}

/// One repository in full: its summary, the default tag's annotations, and the README
/// attached to it (a `text/markdown` referrer, as `oras attach` makes one).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageOverview {
    /// The summary.
    #[serde(flatten)]
    pub summary: ImageSummary,
    /// The annotations of the default tag's manifest or index.
    pub annotations: BTreeMap<String, String>,
    /// The README, when one is attached.
    pub readme: Option<String>,
}

/// README artifacts are small; anything bigger is not read.
const MAX_README_BYTES: u64 = 1024 * 1024;

/// The overview of `repository`.
pub async fn overview(
    client: &Client,
    repository: &RepositoryName,
    preferred: Option<&str>,
    trust: &Trust,
    stored_in: Option<&RepositoryName>,
) -> Result<ImageOverview, CatalogError> {
    let summary = summary(client, repository, preferred, trust, stored_in).await?;
    let (mut annotations, mut readme) = (BTreeMap::new(), None);
    if let Some(tag) = &summary.default_tag {
        let target = Target::Tag(tag.parse().expect("listed tags parse"));
        let top = client.get_manifest(repository, &target).await?;
        annotations = match &top.manifest {
            crate::oci::Manifest::Image(m) => m.annotations.clone(),
            crate::oci::Manifest::Index(i) => i.annotations.clone(),
        };
        for referrer in client.referrers(repository, &top.digest, None).await? {
            // A listed README that is gone, or not what it claims, is no README: the
            // overview goes on without it.
            match readme_of(client, repository, &referrer).await {
                Ok(Some(text)) => {
                    readme = Some(text);
                    break;
                }
                Ok(None) => {}
                Err(e) if super::error::about_the_tag_alone(&e) => {
                    tracing::warn!(%repository, referrer = %referrer.digest, error = %e, "README left out")
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(ImageOverview {
        summary,
        annotations,
        readme,
    })
}

/// The media type of a README artifact.
const MARKDOWN: &str = "text/markdown";

/// The text of `referrer` when it is a README (a `text/markdown` artifact).
async fn readme_of(
    client: &Client,
    repository: &RepositoryName,
    referrer: &crate::oci::Descriptor,
) -> Result<Option<String>, CatalogError> {
    let kind = super::artifacts::artifact_type(client, repository, referrer).await?;
    if kind.as_deref() != Some(MARKDOWN) {
        return Ok(None);
    }
    let manifest = super::artifacts::manifest(client, repository, referrer).await?;
    let Some(layer) = manifest.layers.first() else {
        return Ok(None);
    };
    let text = client
        .get_blob(repository, &layer.digest, Some(MAX_README_BYTES))
        .await?;
    Ok(Some(String::from_utf8_lossy(&text).into_owned()))
}

/// The default tag: `preferred` when the repository has it, else the newest by
/// `created` (a floating tag before the immutable tags it stands for).
pub fn default_tag<'a>(view: &'a TagsView, preferred: Option<&str>) -> Option<&'a TagEntry> {
    preferred
        .and_then(|p| view.tags.iter().find(|t| t.tag == p))
        .or_else(|| {
            view.tags.iter().max_by(|a, b| {
                (&a.oldest_created, a.floating).cmp(&(&b.oldest_created, b.floating))
            })
        })
}

/// The summary of `repository`: from the summary the worker stored in `stored_in`
/// when there is one a view may read, else from its tags.
pub async fn summary(
    client: &Client,
    repository: &RepositoryName,
    preferred: Option<&str>,
    trust: &Trust,
    stored_in: Option<&RepositoryName>,
) -> Result<ImageSummary, CatalogError> {
    if let Some(stored) = for_view(client, stored_in, repository, trust).await {
        let view = summary_view(&stored, trust.signatures());
        let default = default_tag(&view, preferred);
        let labels = default
            .and_then(|t| stored.labels(&t.tag))
            .cloned()
            .unwrap_or_default();
        return Ok(summarised(repository, &view, default, labels, trust));
    }
    // The preferred tag, when the repository has it as an image, is all a summary reads;
    // otherwise the newest by `created` needs every tag.
    let wanted = preferred.and_then(|p| p.parse::<Tag>().ok());
    let view = match &wanted {
        Some(wanted) => Some(selected(client, repository, trust, |t| t == wanted).await?)
            .filter(|view| !view.tags.is_empty()),
        None => None,
    };
    let view = match view {
        Some(view) => view,
        None => selected(client, repository, trust, |_| true).await?,
    };
    let default = default_tag(&view, preferred);
    let labels = match default {
        Some(entry) => {
            let reference = Reference {
                registry: client.registry().to_string(),
                repository: repository.clone(),
                target: Target::Tag(entry.tag.parse().expect("listed tags parse")),
            };
            details(client, &reference)
                .await?
                .platforms
                .into_values()
                .next()
                .map(|p| p.labels)
                .unwrap_or_default()
        }
        None => BTreeMap::new(),
    };
    Ok(summarised(repository, &view, default, labels, trust))
}

/// The summary of `repository` whose tags `view` holds, `default` the tag it
/// describes, with that image's `labels`.
fn summarised(
    repository: &RepositoryName,
    view: &TagsView,
    default: Option<&TagEntry>,
    labels: BTreeMap<String, String>,
    trust: &Trust,
) -> ImageSummary {
    let label = |key: &str| {
        labels
            .get(&format!("org.opencontainers.image.{key}"))
            .cloned()
    };
    ImageSummary {
        name: repository.to_string(),
        title: label("title"),
        description: label("description"),
        source: label("source"),
        licenses: label("licenses"),
        default_tag: default.map(|t| t.tag.clone()),
        architectures: default
            .map(|t| {
                t.platforms
                    .iter()
                    .map(|p| p.platform.split('/').nth(1).unwrap_or_default().to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            })
            .unwrap_or_default(),
        oldest_created: default.and_then(|t| t.oldest_created.clone()),
        vulnerabilities: default.and_then(|t| t.vulnerabilities.clone()),
        signed: trust.checks().then(|| {
            default.is_some_and(|t| {
                !t.platforms.is_empty() && t.platforms.iter().all(|p| p.signed == Some(true))
            })
        }),
        tag_count: view.total,
    }
}

/// The directory page asked for, over the covered repositories. One that cannot be read
/// (gone, or not the reader's to read) is left out.
pub async fn directory(
    client: &Client,
    query: &DirectoryQuery,
    preferred: Option<&str>,
    trust: &Trust,
    covered: &Repositories,
) -> Result<Directory, CatalogError> {
    CatalogError::check_range("page", query.page, 1_000_000)?;
    CatalogError::check_range("per_page", query.per_page, 500)?;
    CatalogError::check_len("q", query.q.as_deref(), 256)?;
    CatalogError::check_len("architecture", query.architecture.as_deref(), 64)?;
    // Checked before the walk: any value would otherwise summarise every repository.
    if let Some(a) = query.architecture.as_deref() {
        if !crate::oci::ARCHITECTURES.contains(&a) {
            return Err(CatalogError::Query(format!(
                "architecture {a:?} is not one the OCI image spec knows; use a GOARCH name: {}",
                crate::oci::ARCHITECTURES.join(", ")
            )));
        }
    }
    let mut repositories = Box::pin(covered.list(client)).await?.into_repositories();
    let needle = query.q.as_deref().map(str::to_lowercase);
    repositories.retain(|r| {
        needle
            .as_deref()
            .is_none_or(|n| r.as_str().to_lowercase().contains(n))
    });
    let per_page = query.per_page.unwrap_or(50);
    let page = query.page.unwrap_or(1);
    let summarise = |chosen: Vec<RepositoryName>| async move {
        let found = stream::iter(chosen)
            .map(|repository| async move {
                let stored_in = covered.aggregate();
                unreadable_as_none(summary(client, &repository, preferred, trust, stored_in).await)
            })
            .buffered(CONCURRENCY)
            .try_collect::<Vec<Option<ImageSummary>>>()
            .await?;
        Ok::<_, CatalogError>(found.into_iter().flatten().collect::<Vec<_>>())
    };
    // A caller may not read every listed repository: only what they can read is counted.
    let (total, images) = if query.filters_summaries() || client.serves_a_caller() {
        let mut all = summarise(repositories).await?;
        all.retain(|image| query.keeps(image));
        let total = all.len();
        let page_of = all
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect();
        (total, page_of)
    } else {
        let chosen = repositories
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .cloned()
            .collect();
        (repositories.len(), summarise(chosen).await?)
    };
    Ok(Directory {
        total,
        signatures: trust.signatures(),
        page,
        per_page,
        images,
    })
}
