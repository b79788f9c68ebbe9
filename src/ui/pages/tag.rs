//! `/images/{name}/tags/{tag}`: per platform, its specifications, its vulnerabilities
//! (filtered by severity) and its SBOM (searched, filtered by type, paged), each from
//! the view `/v1/images/{name}/details|vulnerabilities|sbom/{tag}` serves.

use askama::Template;
use axum::http::Uri;
use serde::Deserialize;

use super::Layout;
use crate::catalog::details;
use crate::catalog::sbom::{self, SbomQuery};
use crate::catalog::vulnerabilities::{self, MatchOrder, VulnerabilityQuery};
use crate::reference::{Reference, RepositoryName, Tag, Target};
use crate::scan::report::Severity;
use crate::trust::Verdict;
use crate::ui::format::{self, Counts};
use crate::web::{query, AppState, Problem};

/// The page's filters as a browser sends them: an empty field means "any".
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    #[serde(default)]
    severity: String,
    #[serde(default)]
    package: String,
    #[serde(default, rename = "type")]
    package_type: String,
    #[serde(default)]
    page: String,
    #[serde(default)]
    sort: String,
}

struct Match {
    id: String,
    page: String,
    severity: &'static str,
    package: String,
    version: String,
    fixed_in: String,
    first_seen: String,
    exposure: String,
    link: Option<String>,
}

struct Package {
    name: String,
    version: String,
    package_type: String,
    licenses: String,
}

struct Platform {
    platform: String,
    pull: String,
    specs: Vec<(&'static str, String)>,
    labels: Vec<(String, String)>,
    counts: Counts,
    scan: Option<String>,
    scan_verdict: (&'static str, String),
    /// `None` when no result may be shown: unknown, not "no matches".
    matches: Option<Vec<Match>>,
    sbom_verdict: (&'static str, String),
    /// `None` when no SBOM may be shown.
    packages: Option<Vec<Package>>,
    package_total: Option<usize>,
    previous: Option<String>,
    next: Option<String>,
    downloads: Vec<(&'static str, String)>,
    signatures: Vec<Signature>,
}

/// One of refcat's artifacts on a platform, its verdict, and the command that checks it.
struct Signature {
    what: &'static str,
    artifact: String,
    verdict: (&'static str, String),
    command: String,
}

#[derive(Template)]
#[template(path = "tag.html", config = "src/ui/askama.toml")]
struct TagPage {
    layout: Layout,
    name: String,
    overview: String,
    tag: String,
    form: Form,
    action: String,
    severities: [&'static str; 6],
    platforms: Vec<Platform>,
}

impl Form {
    fn queries(&self) -> Result<(VulnerabilityQuery, SbomQuery), Problem> {
        Ok((
            VulnerabilityQuery {
                severity: format::severity_field(&self.severity)?,
                sort: match self.sort.as_str() {
                    "" => None,
                    "severity" => Some(MatchOrder::Severity),
                    "id" => Some(MatchOrder::Id),
                    "package" => Some(MatchOrder::Package),
                    "firstSeen" => Some(MatchOrder::FirstSeen),
                    other => {
                        return Err(Problem::bad_request(format!(
                            "sort must be severity, id, package or firstSeen, not {other:?}"
                        )))
                    }
                },
            },
            SbomQuery {
                name: format::text_field(&self.package),
                package_type: format::text_field(&self.package_type),
                page: format::page_field(&self.page)?,
                per_page: None,
            },
        ))
    }

    fn at(&self, action: &str, page: usize) -> String {
        format::link(
            action,
            &[
                ("severity", self.severity.clone()),
                ("sort", self.sort.clone()),
                ("package", self.package.clone()),
                ("type", self.package_type.clone()),
                (
                    "page",
                    if page > 1 {
                        page.to_string()
                    } else {
                        String::new()
                    },
                ),
            ],
        )
    }
}

/// Renders the page of `repository:tag` for the filters in `uri`.
pub async fn render(
    state: &AppState,
    repository: RepositoryName,
    tag: Tag,
    uri: &Uri,
) -> Result<String, Problem> {
    let form: Form = query(uri)?;
    let (vulnerability_query, sbom_query) = form.queries()?;
    let client = &state.client;
    let reference = Reference {
        registry: client.registry().to_string(),
        repository: repository.clone(),
        target: Target::Tag(tag.clone()),
    };
    let (details, vulnerabilities, sbom) = tokio::try_join!(
        details::details(client, &reference),
        vulnerabilities::vulnerabilities(client, &reference, &vulnerability_query, &state.trust),
        sbom::sbom(
            client,
            &reference,
            &sbom_query,
            &state.trust,
            &state.packages
        ),
    )?;
    let overview = format::image_path(repository.as_str());
    let action = format!("{overview}/tags/{tag}");
    let mut platforms = Vec::new();
    for (platform, spec) in details.platforms {
        let scan = vulnerabilities.platforms.get(&platform);
        let packages = sbom.platforms.get(&platform);
        let verdict = |v: Option<&Verdict>| format::verdict(v);
        let (page, pages) = packages.map_or((1, 1), |p| {
            let pages = p.total.unwrap_or(0).div_ceil(p.per_page).max(1);
            (p.page, pages)
        });
        platforms.push(Platform {
            pull: format!(
                "docker pull {}/{repository}@{}",
                client.registry(),
                spec.digest
            ),
            specs: vec![
                ("Digest", spec.digest.clone()),
                ("Created", spec.created.clone().unwrap_or_default()),
                ("Entrypoint", spec.entrypoint.join(" ")),
                ("Command", spec.cmd.join(" ")),
                ("User", spec.user.clone().unwrap_or_default()),
                (
                    "Working directory",
                    spec.working_dir.clone().unwrap_or_default(),
                ),
                ("Exposed ports", spec.exposed_ports.join(", ")),
                ("Environment", spec.env.join("\n")),
                (
                    "Layers",
                    format!("{} ({} bytes)", spec.layer_count, spec.total_size),
                ),
            ],
            labels: spec.labels.into_iter().collect(),
            counts: Counts::of(scan.and_then(|s| s.totals.as_ref())),
            scan: scan.and_then(|s| s.scanned_at.clone()),
            scan_verdict: verdict(scan.and_then(|s| s.signature.as_ref())),
            matches: scan
                .and_then(|s| s.matches.as_ref())
                .map(|matches| {
                    matches
                        .iter()
                        .map(|m| Match {
                            id: m.matched.id.clone(),
                            page: super::vulnerabilities::path(&m.matched.id),
                            severity: m.matched.severity.as_str(),
                            package: m.matched.package.clone(),
                            version: m.matched.version.clone(),
                            fixed_in: m.matched.fix_versions.join(", "),
                            first_seen: m.first_seen.clone().unwrap_or_default(),
                            exposure: m.first_seen.as_deref().map(format::since).unwrap_or_default(),
                            link: m
                                .matched
                                .data_source
                                .clone()
                                .filter(|u| u.starts_with("https://")),
                        })
                        .collect()
                }),
            sbom_verdict: verdict(packages.and_then(|p| p.signature.as_ref())),
            packages: packages
                .and_then(|p| p.packages.as_ref())
                .map(|packages| {
                    packages
                        .iter()
                        .map(|p| Package {
                            name: p.name.clone(),
                            version: p.version.clone(),
                            package_type: p.package_type.clone(),
                            licenses: p.licenses.join(", "),
                        })
                        .collect()
                }),
            package_total: packages.and_then(|p| p.total),
            downloads: super::download::Download::NAMES
                .iter()
                .map(|name| {
                    let href = format::link(
                        &format!("{action}/download/{name}"),
                        &[("platform", platform.clone())],
                    );
                    (*name, href)
                })
                .collect(),
            signatures: [
                ("SBOM (Syft JSON)", packages.and_then(|p| p.artifact.clone()), packages.and_then(|p| p.signature.as_ref())),
                ("Vulnerability scan (Grype)", scan.and_then(|s| s.artifact.clone()), scan.and_then(|s| s.signature.as_ref())),
            ]
            .into_iter()
            .filter_map(|(what, artifact, verdict)| {
                let artifact = artifact?;
                Some(Signature {
                    what,
                    command: format!(
                        "cosign verify --key cosign.pub --insecure-ignore-tlog=true {}/{repository}@{artifact}",
                        client.registry()
                    ),
                    verdict: format::verdict(verdict),
                    artifact,
                })
            })
            .collect(),
            previous: (page > 1).then(|| form.at(&action, page - 1)),
            next: (page < pages).then(|| form.at(&action, page + 1)),
            platform,
        });
    }
    Ok(super::render(&TagPage {
        layout: Layout::new(format!("{repository}:{tag}"), "images").checked_by(&state.trust),
        name: repository.to_string(),
        overview,
        tag: tag.to_string(),
        form,
        action,
        severities: Severity::ALL.map(Severity::as_str),
        platforms,
    }))
}
