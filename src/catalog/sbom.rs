//! The SBOM view: per-platform packages from the newest Syft JSON artifact, filtered by
//! name and type, paged. A Syft JSON runs to tens of MB: it is decompressed and parsed
//! once per artifact digest, on a blocking thread, a few at a time, and the package
//! list is kept; every filter and page is then cut from that list.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::platforms::with_each_platform;
use super::CatalogError;
use crate::artifact::Format;
use crate::digest::Digest;
use crate::media_types::SYFT_JSON;
use crate::reference::{Reference, RepositoryName};
use crate::registry::Client;
use crate::trust::{Candidate, Judged, Shown, Trust, Verdict};

/// Filters and paging for the SBOM view.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct SbomQuery {
    /// Only packages whose name contains this.
    pub name: Option<String>,
    /// Only packages of this type (`deb`, `apk`, `python`, `npm`, …).
    #[serde(rename = "type")]
    pub package_type: Option<String>,
    /// 1-based page.
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<usize>,
    /// Packages per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub per_page: Option<usize>,
}

/// Packages per platform.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SbomView {
    /// As asked.
    pub reference: String,
    /// By platform.
    pub platforms: BTreeMap<String, SbomPlatform>,
}

/// One platform's packages. Where no SBOM may be shown (none yet, or none whose
/// signature verifies), `total` and `packages` are `null`: unknown, never zero.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SbomPlatform {
    /// The platform manifest's digest.
    pub digest: String,
    /// The Syft JSON artifact read; `None` when the platform has no SBOM yet (or, with
    /// `--require-signature`, none that verifies).
    pub artifact: Option<String>,
    /// Its signature verdict (`not-checked` when the catalog runs without keys).
    pub signature: Option<Verdict>,
    /// Packages matching the filters, before paging; `null` when no SBOM may be shown.
    pub total: Option<usize>,
    /// This page.
    pub page: usize,
    /// Page size.
    pub per_page: usize,
    /// The packages on this page; `null` when no SBOM may be shown.
    pub packages: Option<Vec<Package>>,
}

/// One package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// syft's package type.
    #[serde(rename = "type")]
    pub package_type: String,
    /// Package URL.
    pub purl: Option<String>,
    /// License expressions.
    pub licenses: Vec<String>,
}

/// Package lists parsed from Syft JSON artifacts, by `repository@artifact digest`, and
/// the bound on parses running at once.
#[derive(Clone)]
pub struct PackageCache {
    parsed: moka::future::Cache<String, Arc<Vec<Package>>>,
    parsing: Arc<tokio::sync::Semaphore>,
}

/// Syft JSON documents parsed at once: each may hold hundreds of MB while it is parsed.
const PARSES_AT_ONCE: usize = 2;
/// A rough size of one parsed package.
const PACKAGE_WEIGHT: usize = 256;

impl PackageCache {
    /// A cache bounded as `config` says (digest-addressed: kept until memory runs short).
    pub fn new(config: crate::cache::CacheConfig) -> Self {
        PackageCache {
            parsed: config
                .immutable(|k: &String, v: &Arc<Vec<Package>>| k.len() + v.len() * PACKAGE_WEIGHT),
            parsing: Arc::new(tokio::sync::Semaphore::new(PARSES_AT_ONCE)),
        }
    }

    /// The packages of `artifact`, parsed once.
    async fn packages(
        &self,
        client: &Client,
        artifact: &Shown<Candidate>,
    ) -> Result<Arc<Vec<Package>>, CatalogError> {
        let origin = artifact.origin();
        let key = format!("{}@{}", origin.repository(), origin.artifact());
        let what = origin.artifact().to_string();
        let parse = async {
            let _permit = self
                .parsing
                .acquire()
                .await
                .expect("the semaphore is never closed");
            // The layer read decompresses a gzip layer, bounded against gzip bombs.
            let data = artifact
                .layer(client, SYFT_JSON)
                .await?
                .ok_or_else(|| CatalogError::stored(&what, "no Syft JSON layer"))?;
            data.try_map_blocking(|d| packages(&d))
                .await
                .map_err(|e| CatalogError::stored(&what, e))?
                .map(|parsed| Arc::new(parsed.get().clone()))
                .map_err(|e| CatalogError::stored(&what, e))
        };
        crate::cache::coalesced(&self.parsed, key, parse).await
    }
}

impl std::fmt::Debug for PackageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} parsed SBOMs", self.parsed.entry_count())
    }
}

impl Default for PackageCache {
    fn default() -> Self {
        PackageCache::new(crate::cache::CacheConfig::default())
    }
}

/// Reads syft's `artifacts[]`.
fn packages(syft_json: &[u8]) -> Result<Vec<Package>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Document {
        #[serde(default)]
        artifacts: Vec<Artifact>,
    }
    #[derive(Deserialize)]
    struct Artifact {
        name: String,
        #[serde(default)]
        version: String,
        #[serde(default, rename = "type")]
        package_type: String,
        #[serde(default)]
        purl: Option<String>,
        #[serde(default)]
        licenses: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(syft_json)?;
    let mut out: Vec<Package> = document
        .artifacts
        .into_iter()
        .map(|a| Package {
            name: a.name,
            version: a.version,
            package_type: a.package_type,
            purl: a.purl.filter(|p| !p.is_empty()),
            // syft writes objects with a `value`; older versions wrote plain strings.
            licenses: a
                .licenses
                .iter()
                .filter_map(|l| l["value"].as_str().or(l.as_str()).map(str::to_string))
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    Ok(out)
}

/// The newest SBOM a view may show on platform manifest `digest`, with its packages
/// when they may be shown.
pub async fn platform_packages(
    client: &Client,
    repository: &RepositoryName,
    digest: &Digest,
    trust: &Trust,
    cache: &PackageCache,
) -> Result<(Option<Judged>, Option<Arc<Vec<Package>>>), CatalogError> {
    let judged = super::artifacts::newest(client, repository, digest, &[Format::SyftJson], trust)
        .await?
        .pop()
        .flatten();
    let packages = match judged.as_ref().and_then(Judged::content) {
        Some(artifact) => Some(cache.packages(client, artifact).await?),
        None => None,
    };
    Ok((judged, packages))
}

/// The SBOM view of `reference`.
pub async fn sbom(
    client: &Client,
    reference: &Reference,
    query: &SbomQuery,
    trust: &Trust,
    cache: &PackageCache,
) -> Result<SbomView, CatalogError> {
    let repository = &reference.repository;
    CatalogError::check_range("page", query.page, 1_000_000)?;
    CatalogError::check_range("per_page", query.per_page, 1000)?;
    let per_page = query.per_page.unwrap_or(100);
    let page = query.page.unwrap_or(1);
    // Platforms are read at once, and each layer while its signature is checked.
    let (_, read) = with_each_platform(client, reference, |digest| async move {
        let (judged, all) = platform_packages(client, repository, &digest, trust, cache).await?;
        let matching: Option<Vec<&Package>> = all.as_ref().map(|all| {
            all.iter()
                .filter(|p| {
                    query.name.as_deref().is_none_or(|n| p.name.contains(n))
                        && query
                            .package_type
                            .as_deref()
                            .is_none_or(|t| p.package_type == t)
                })
                .collect()
        });
        let total = matching.as_ref().map(Vec::len);
        let packages = matching.map(|matching| {
            matching
                .into_iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .cloned()
                .collect()
        });
        Ok::<_, CatalogError>(SbomPlatform {
            digest: digest.to_string(),
            artifact: judged.as_ref().map(|j| j.artifact().to_string()),
            signature: judged.map(|j| j.verdict().clone()),
            total,
            page,
            per_page,
            packages,
        })
    })
    .await?;
    Ok(SbomView {
        reference: reference.to_string(),
        platforms: read
            .into_iter()
            .map(|(subject, platform)| (subject.platform.to_string(), platform))
            .collect(),
    })
}
