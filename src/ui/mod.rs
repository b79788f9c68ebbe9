//! The web catalog: HTML pages rendered on the server from the same [`crate::catalog`]
//! views the API serves, so a page and its `/v1` JSON always agree. Pages work without
//! JavaScript: every filter, sort and page is a GET parameter. A small script only
//! swaps the page body in place and remembers the theme.
//!
//! Pages share the API's caches and ETags. Assets are embedded in the binary under
//! hashed names and served `immutable`; a strict Content-Security-Policy allows
//! nothing from other origins.

mod assets;
mod format;
mod pages;
mod paths;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::web::{live, respond, Problem, Rendered, Shared, Viewer};

/// The pages and their assets.
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(directory))
        .route("/images/{*path}", get(image))
        .route("/vulnerabilities", get(vulnerabilities))
        .route("/vulnerabilities/{id}", get(vulnerability))
        .route("/assets/{name}", get(assets::serve))
        .layer(axum::middleware::from_fn(security_headers))
}

/// The metrics name of the page at `path` (after `/images/`); `other` for a path that
/// names no page.
pub(crate) fn page_view(path: &str) -> &'static str {
    paths::parse(path).map_or("other", |page| page.view())
}

/// What pages may load: their own origin only, no framing, no inline script or style.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    secure(response.headers_mut());
    response
}

/// The headers every page carries, error pages built outside the page routes included.
/// A download sets a stricter policy of its own (a sandbox), which stays.
fn secure(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

async fn directory(Viewer(state): Viewer, headers: HeaderMap, uri: Uri) -> Response {
    let key = format!("ui:{uri}");
    page(
        &state,
        &headers,
        key,
        pages::directory::render(&state, &uri),
    )
    .await
}

async fn vulnerabilities(Viewer(state): Viewer, headers: HeaderMap, uri: Uri) -> Response {
    let key = format!("ui:{uri}");
    page(
        &state,
        &headers,
        key,
        pages::vulnerabilities::render(&state, &uri),
    )
    .await
}

async fn vulnerability(
    Viewer(state): Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let key = format!("ui:{uri}");
    page(
        &state,
        &headers,
        key,
        pages::vulnerabilities::render_one(&state, &id),
    )
    .await
}

async fn image(
    Viewer(state): Viewer,
    Path(path): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let route = match paths::parse(&path) {
        Ok(route) => route,
        Err(problem) => return error_page(&problem),
    };
    if let paths::Page::Download(repository, tag, what) = route {
        return match pages::download::respond(&state, repository, tag, what, &uri).await {
            Ok(response) => response,
            Err(problem) => error_page(&problem),
        };
    }
    if let paths::Page::CompareForm(repository) = &route {
        return match pages::compare::canonical(repository, &uri) {
            Ok(to) => axum::response::Redirect::to(&to).into_response(),
            Err(problem) => error_page(&problem),
        };
    }
    let key = format!("ui:{uri}");
    let render = async {
        match route {
            paths::Page::Overview(repository) => {
                let missing = format!("There is no repository {repository} in this registry.");
                in_words(
                    pages::overview::render(&state, &repository, &uri).await,
                    missing,
                )
            }
            paths::Page::Tag(repository, tag) => {
                let missing = format!("{repository} has no tag {tag}.");
                in_words(
                    pages::tag::render(&state, repository, tag, &uri).await,
                    missing,
                )
            }
            paths::Page::Artifacts(repository, tag) => {
                pages::artifacts::render(&state, repository, tag).await
            }
            paths::Page::History(repository, stream) => {
                pages::history::render(&state, &repository, &stream).await
            }
            paths::Page::Compare(repository, from, to) => {
                pages::compare::render(&state, &repository, from, to).await
            }
            // Answered above: a redirect to its canonical path, and a file.
            paths::Page::CompareForm(repository) | paths::Page::Download(repository, ..) => {
                Err(Problem::not_found(format!("{repository}: no page here")))
            }
        }
    };
    page(&state, &headers, key, render).await
}

/// A missing repository or tag told in the page's own words (the API's detail names
/// registry calls); other answers, "not a container image" among them, stay as they are.
fn in_words(page: Result<String, Problem>, missing: String) -> Result<String, Problem> {
    page.map_err(|problem| {
        if problem.status() == StatusCode::NOT_FOUND && problem.title() == "Not found" {
            Problem::not_found(missing)
        } else {
            problem
        }
    })
}

/// A page from the view cache (rendered once however many ask), or its error page.
async fn page(
    state: &Shared,
    headers: &HeaderMap,
    key: String,
    render: impl std::future::Future<Output = Result<String, Problem>>,
) -> Response {
    // Boxed: a page awaits several whole views, too large a future to copy through
    // the cache's frames on a worker thread's stack in a debug build.
    let render = Box::pin(render);
    let rendered = state
        .cache
        .get(key, false, async { render.await.map(Rendered::html) })
        .await;
    match rendered {
        Ok(rendered) => respond(&rendered, headers, &live(state)),
        Err(problem) => error_page(&problem),
    }
}

/// The page for an error: what failed and what to do, with the API's status and
/// `Retry-After`, and the pages' security headers wherever it is answered from.
pub(crate) fn error_page(problem: &Problem) -> Response {
    let body = pages::error::render(problem);
    let mut response = (
        problem.status(),
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    if let Some(seconds) = problem.retry_after() {
        response.headers_mut().insert(
            HeaderName::from_static("retry-after"),
            HeaderValue::from(seconds),
        );
    }
    if let Some(challenge) = problem.challenge() {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    if problem.status() == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    secure(response.headers_mut());
    response
}
