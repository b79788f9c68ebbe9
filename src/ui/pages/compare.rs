//! `/images/{name}/compare/{a}...{b}`: two releases side by side, from the view
//! `/v1/images/{name}/compare/{a}...{b}` serves.

use askama::Template;
use axum::http::Uri;
use serde::Deserialize;

use super::Layout;
use crate::catalog::compare::{self, PlatformChanges};
use crate::reference::{RepositoryName, Target};
use crate::ui::format;
use crate::web::{query, AppState, Problem};

#[derive(Template)]
#[template(path = "compare.html", config = "src/ui/askama.toml")]
struct ComparePage {
    layout: Layout,
    name: String,
    overview: String,
    from: String,
    to: String,
    platforms: Vec<(String, PlatformChanges)>,
    added_platforms: Vec<String>,
    removed_platforms: Vec<String>,
}

impl ComparePage {
    fn severity(&self, severity: &crate::scan::report::Severity) -> &'static str {
        severity.as_str()
    }
}

/// Renders `repository` compared from `from` to `to`.
pub async fn render(
    state: &AppState,
    repository: &RepositoryName,
    from: Target,
    to: Target,
) -> Result<String, Problem> {
    let view = compare::compare(
        &state.client,
        repository,
        (from, to),
        &state.trust,
        &state.packages,
    )
    .await?;
    Ok(super::render(&ComparePage {
        layout: Layout::new(
            format!("{repository}: {} → {}", view.from, view.to),
            "images",
        )
        .checked_by(&state.trust),
        name: view.repository,
        overview: format::image_path(repository.as_str()),
        from: view.from,
        to: view.to,
        platforms: view.platforms.into_iter().collect(),
        added_platforms: view.added_platforms,
        removed_platforms: view.removed_platforms,
    }))
}

/// The compare form as a browser sends it.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Form {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// Where the compare form's answer lives: `/images/{name}/compare/{from}...{to}`.
pub fn canonical(repository: &RepositoryName, uri: &Uri) -> Result<String, Problem> {
    let form: Form = query(uri)?;
    let range = format!("{}...{}", form.from, form.to);
    crate::web::compared(&range)?;
    Ok(format!(
        "{}/compare/{range}",
        format::image_path(repository.as_str())
    ))
}
