//! The page for an error: the API's status, title and detail, in words.

use askama::Template;

use super::Layout;
use crate::web::Problem;

#[derive(Template)]
#[template(path = "error.html", config = "src/ui/askama.toml")]
struct ErrorPage<'a> {
    layout: Layout,
    status: u16,
    title: &'a str,
    detail: &'a str,
    retry_after: Option<u64>,
}

/// The error page of `problem`.
pub fn render(problem: &Problem) -> String {
    super::render(&ErrorPage {
        layout: Layout::new(problem.title(), "images"),
        status: problem.status().as_u16(),
        title: problem.title(),
        detail: problem.detail(),
        retry_after: problem.retry_after(),
    })
}
