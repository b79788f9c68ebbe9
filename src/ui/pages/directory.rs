//! `/`: every repository, searchable by name and filtered by architecture, signed
//! state and most severe match; the same rows as `/v1/images` with the same filters.

use askama::Template;
use axum::http::Uri;
use serde::Deserialize;

use super::Layout;
use crate::catalog::directory::{self, DirectoryQuery, ImageSummary};
use crate::scan::report::Severity;
use crate::ui::format::{self, Counts};
use crate::web::{query, AppState, Problem};

/// The form as a browser sends it: an empty field means "any".
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    #[serde(default)]
    q: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    signed: String,
    #[serde(default)]
    highest: String,
    #[serde(default)]
    page: String,
}

impl Form {
    fn to_query(&self) -> Result<DirectoryQuery, Problem> {
        let signed = match self.signed.as_str() {
            "" => None,
            "true" => Some(true),
            "false" => Some(false),
            other => {
                return Err(Problem::bad_request(format!(
                    "signed must be true or false, not {other:?}"
                )))
            }
        };
        Ok(DirectoryQuery {
            page: format::page_field(&self.page)?,
            per_page: None,
            q: format::text_field(&self.q),
            architecture: format::text_field(&self.architecture),
            signed,
            highest: format::severity_field(&self.highest)?,
        })
    }

    fn pairs(&self, page: usize) -> Vec<(&'static str, String)> {
        vec![
            ("q", self.q.clone()),
            ("architecture", self.architecture.clone()),
            ("signed", self.signed.clone()),
            ("highest", self.highest.clone()),
            (
                "page",
                if page > 1 {
                    page.to_string()
                } else {
                    String::new()
                },
            ),
        ]
    }
}

struct Row {
    name: String,
    href: String,
    description: String,
    default_tag: String,
    architectures: String,
    counts: Counts,
    signed: Option<(&'static str, &'static str)>,
    tags: usize,
}

impl Row {
    fn of(image: ImageSummary) -> Row {
        Row {
            href: format::image_path(&image.name),
            counts: Counts::of(image.vulnerabilities.as_ref()),
            signed: format::signed(image.signed),
            description: image.description.or(image.title).unwrap_or_default(),
            default_tag: image.default_tag.unwrap_or_default(),
            architectures: image.architectures.join(", "),
            tags: image.tag_count,
            name: image.name,
        }
    }
}

#[derive(Template)]
#[template(path = "directory.html", config = "src/ui/askama.toml")]
struct DirectoryPage {
    layout: Layout,
    form: Form,
    architectures: [&'static str; 6],
    severities: [&'static str; 6],
    keys: bool,
    rows: Vec<Row>,
    total: usize,
    page: usize,
    pages: usize,
    previous: Option<String>,
    next: Option<String>,
}

/// Renders the directory for the query in `uri`.
pub async fn render(state: &AppState, uri: &Uri) -> Result<String, Problem> {
    let form: Form = query(uri)?;
    let q = form.to_query()?;
    let view = directory::directory(
        &state.client,
        &q,
        state.default_tag.as_deref(),
        &state.trust,
        &state.repositories,
    )
    .await?;
    let pages = view.total.div_ceil(view.per_page).max(1);
    let at = |page: usize| format::link("/", &form.pairs(page));
    Ok(super::render(&DirectoryPage {
        layout: Layout::new("Images", "images").checked_by(&state.trust),
        architectures: ["amd64", "arm64", "arm", "386", "ppc64le", "s390x"],
        severities: Severity::ALL.map(Severity::as_str),
        keys: state.trust.checks(),
        rows: view.images.into_iter().map(Row::of).collect(),
        total: view.total,
        page: view.page,
        pages,
        previous: (view.page > 1).then(|| at(view.page - 1)),
        next: (view.page < pages).then(|| at(view.page + 1)),
        form,
    }))
}
