//! `/images/{name}`: a repository's summary, README and tags, from the same views as
//! `/v1/images/{name}` and `/v1/images/{name}/tags`.

use askama::Template;
use axum::http::Uri;
use serde::Deserialize;

use super::Layout;
use crate::catalog::directory;
use crate::catalog::tags::{self, TagEntry, TagsQuery};
use crate::reference::RepositoryName;
use crate::ui::format::{self, Counts};
use crate::web::{query, AppState, Problem};

/// The page's query as a browser sends it: an empty page means the first.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    #[serde(default)]
    page: String,
}

struct TagRow {
    tag: String,
    href: String,
    history: String,
    floating: bool,
    created: String,
    created_day: String,
    platforms: String,
    counts: Counts,
    signed: Option<(&'static str, &'static str)>,
    pull: String,
}

#[derive(Template)]
#[template(path = "overview.html", config = "src/ui/askama.toml")]
struct OverviewPage {
    layout: Layout,
    name: String,
    description: String,
    source: Option<String>,
    licenses: Option<String>,
    default_tag: Option<String>,
    annotations: Vec<(String, String)>,
    readme: Option<String>,
    keys: bool,
    compare: String,
    rows: Vec<TagRow>,
    skipped: Vec<(String, String)>,
    page: usize,
    pages: usize,
    total: usize,
    previous: Option<String>,
    next: Option<String>,
}

/// Markdown to HTML, with everything that could run or load from elsewhere removed.
fn markdown(text: &str) -> String {
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, pulldown_cmark::Parser::new(text));
    ammonia::Builder::default()
        .rm_tags(["img"])
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&html)
        .to_string()
}

/// Renders the overview of `repository` with the page of its tags `uri` asks for.
pub async fn render(
    state: &AppState,
    repository: &RepositoryName,
    uri: &Uri,
) -> Result<String, Problem> {
    let client = &state.client;
    let form: Form = query(uri)?;
    let paging = TagsQuery {
        page: format::page_field(&form.page)?,
        per_page: None,
    };
    let (overview, tags) = tokio::try_join!(
        directory::overview(
            client,
            repository,
            state.default_tag.as_deref(),
            &state.trust,
            state.repositories.aggregate(),
        ),
        tags::tags(
            client,
            repository,
            &paging,
            &state.trust,
            state.repositories.aggregate()
        ),
    )?;
    let (page, pages, total) = (tags.page, tags.pages(), tags.total);
    let at = |page: usize| {
        let page = if page > 1 {
            page.to_string()
        } else {
            String::new()
        };
        format!(
            "{}#tags",
            format::link(&format::image_path(repository.as_str()), &[("page", page)])
        )
    };
    let host = client.registry();
    let row = |entry: TagEntry| {
        let platforms: Vec<&str> = entry
            .platforms
            .iter()
            .map(|p| p.platform.as_str())
            .collect();
        let signed = state.trust.checks().then(|| {
            !entry.platforms.is_empty() && entry.platforms.iter().all(|p| p.signed == Some(true))
        });
        TagRow {
            href: format!(
                "{}/tags/{}",
                format::image_path(repository.as_str()),
                entry.tag
            ),
            history: format!(
                "{}/history/{}",
                format::image_path(repository.as_str()),
                entry.tag
            ),
            floating: entry.floating,
            created: entry.oldest_created.clone().unwrap_or_default(),
            created_day: entry
                .oldest_created
                .as_deref()
                .map(|c| c.chars().take(10).collect())
                .unwrap_or_default(),
            platforms: platforms.join(", "),
            counts: Counts::of(entry.vulnerabilities.as_ref()),
            signed: signed.and_then(|s| format::signed(Some(s))),
            pull: format!("docker pull {host}/{repository}@{}", entry.digest),
            tag: entry.tag,
        }
    };
    let summary = overview.summary;
    Ok(super::render(&OverviewPage {
        layout: Layout::new(repository.as_str(), "images").checked_by(&state.trust),
        name: summary.name,
        description: summary.description.or(summary.title).unwrap_or_default(),
        source: summary.source,
        licenses: summary.licenses,
        default_tag: summary.default_tag,
        annotations: overview.annotations.into_iter().collect(),
        readme: overview.readme.as_deref().map(markdown),
        keys: state.trust.checks(),
        compare: format!("{}/compare", format::image_path(repository.as_str())),
        rows: tags.tags.into_iter().map(row).collect(),
        skipped: tags
            .skipped
            .into_iter()
            .map(|s| (s.tag, s.reason))
            .collect(),
        page,
        pages,
        total,
        previous: (page > 1).then(|| at(page - 1)),
        next: (page < pages).then(|| at(page + 1)),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn markdown_is_rendered_and_sanitised() {
        let html = super::markdown(
            "# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) ![i](http://e/x.png)",
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(
            !html.contains("<script") && !html.contains("javascript:"),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
    }
}
