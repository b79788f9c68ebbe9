//! `/vulnerabilities`: the catalog-wide aggregate, searched by id and filtered by
//! severity; `/vulnerabilities/{id}`: every repository, tag, platform and package one
//! of them affects. The same rows as `/v1/vulnerabilities` and `/v1/vulnerabilities/{id}`.

use askama::Template;
use axum::http::Uri;
use serde::Deserialize;

use super::Layout;
use crate::catalog::advisory::{self, Affected, VulnerabilityId};
use crate::catalog::aggregate;
use crate::scan::report::Severity;
use crate::ui::format;
use crate::web::{query, AppState, Problem};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    #[serde(default)]
    q: String,
    #[serde(default)]
    severity: String,
}

struct Row {
    id: String,
    href: String,
    severity: &'static str,
    repositories: usize,
    tags: usize,
}

#[derive(Template)]
#[template(path = "vulnerabilities.html", config = "src/ui/askama.toml")]
struct AggregatePage {
    layout: Layout,
    form: Form,
    severities: [&'static str; 6],
    /// `None` when no tag has a result a view may show.
    totals: Option<Vec<(&'static str, usize)>>,
    coverage: crate::catalog::aggregate::Coverage,
    live: bool,
    rows: Vec<Row>,
}

/// The page path of vulnerability `id`.
pub fn path(id: &str) -> String {
    format!(
        "/vulnerabilities/{}",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

/// Renders the aggregate for the filters in `uri`.
pub async fn render(state: &AppState, uri: &Uri) -> Result<String, Problem> {
    let form: Form = query(uri)?;
    let severity = format::severity_field(&form.severity)?;
    let view = crate::web::aggregate(state).await?;
    let needle = form.q.to_lowercase();
    let rows = view
        .data
        .vulnerabilities
        .iter()
        .filter(|e| severity.is_none_or(|s| e.severity == s))
        .filter(|e| e.id.to_lowercase().contains(&needle))
        .map(|e| Row {
            href: path(&e.id),
            severity: e.severity.as_str(),
            repositories: e.affected.len(),
            tags: e.affected.values().map(|t| t.len()).sum(),
            id: e.id.clone(),
        })
        .collect();
    Ok(super::render(&AggregatePage {
        layout: Layout::new("Vulnerabilities", "vulnerabilities").checked_by(&state.trust),
        severities: Severity::ALL.map(Severity::as_str),
        totals: view.data.totals.as_ref().map(|totals| {
            Severity::ALL
                .into_iter()
                .map(|s| (s.as_str(), totals.get(&s).copied().unwrap_or(0)))
                .collect()
        }),
        coverage: view.data.coverage,
        live: view.source == aggregate::AggregateSource::Live,
        rows,
        form,
    }))
}

struct AffectedRow {
    affected: Affected,
    href: String,
    fixed_in: String,
}

#[derive(Template)]
#[template(path = "advisory.html", config = "src/ui/askama.toml")]
struct AdvisoryPage {
    layout: Layout,
    id: String,
    severity: &'static str,
    rows: Vec<AffectedRow>,
}

/// Renders the page of vulnerability `id`.
pub async fn render_one(state: &AppState, id: &str) -> Result<String, Problem> {
    let id: VulnerabilityId = id
        .parse()
        .map_err(|e: crate::catalog::CatalogError| Problem::not_found(e))?;
    let aggregate = crate::web::aggregate(state).await?;
    let view = advisory::advisory(&state.client, &id, &aggregate, &state.trust).await?;
    Ok(super::render(&AdvisoryPage {
        layout: Layout::new(id.as_str(), "vulnerabilities").checked_by(&state.trust),
        severity: view.severity.as_str(),
        rows: view
            .affected
            .into_iter()
            .map(|a| AffectedRow {
                href: format!("{}/tags/{}", format::image_path(&a.repository), a.tag),
                fixed_in: a.fix_versions.join(", "),
                affected: a,
            })
            .collect(),
        id: view.id,
    }))
}
