//! `/images/{name}/history/{stream}`: a stream's releases, newest first, from the view
//! `/v1/images/{name}/history/{stream}` serves, each with its counts and a link to
//! compare it with the release before.

use askama::Template;

use super::Layout;
use crate::catalog::history;
use crate::reference::{RepositoryName, Tag};
use crate::ui::format::{self, Counts};
use crate::web::{AppState, Problem};

struct Row {
    digest: String,
    created: String,
    created_day: String,
    tags: String,
    current: bool,
    counts: Counts,
    /// Compared with the release before it, where there is one.
    compare: Option<String>,
}

#[derive(Template)]
#[template(path = "history.html", config = "src/ui/askama.toml")]
struct HistoryPage {
    layout: Layout,
    name: String,
    overview: String,
    stream: String,
    rows: Vec<Row>,
}

/// Renders the history of `stream` in `repository`.
pub async fn render(
    state: &AppState,
    repository: &RepositoryName,
    stream: &Tag,
) -> Result<String, Problem> {
    let view = history::history(&state.client, repository, stream, &state.trust).await?;
    let overview = format::image_path(repository.as_str());
    let releases = view.releases;
    let rows = releases
        .iter()
        .enumerate()
        .map(|(i, r)| Row {
            digest: r.digest.clone(),
            created: r.created.clone().unwrap_or_default(),
            created_day: r
                .created
                .as_deref()
                .map(|c| c.chars().take(10).collect())
                .unwrap_or_default(),
            tags: r.tags.join(", "),
            current: r.current,
            counts: Counts::of(r.vulnerabilities.as_ref()),
            compare: releases
                .get(i + 1)
                .map(|before| format!("{overview}/compare/{}...{}", before.digest, r.digest)),
        })
        .collect();
    Ok(super::render(&HistoryPage {
        layout: Layout::new(format!("{repository} {stream} history"), "images")
            .checked_by(&state.trust),
        name: view.repository,
        overview,
        stream: view.stream,
        rows,
    }))
}
