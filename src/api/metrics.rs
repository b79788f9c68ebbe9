//! `/metrics` in the Prometheus text format: HTTP requests by view and status, and the
//! registry requests the catalog made, by method and kind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::routes::{ImageRoute, View};
use super::Shared;
use crate::reference::Target;

/// HTTP requests by (view, status).
#[derive(Clone, Debug, Default)]
pub struct HttpCounter(Arc<Mutex<BTreeMap<(&'static str, u16), u64>>>);

/// The view a path belongs to: a small, fixed set of label values. Paths under
/// `/v1/images/` and `/images/` are read by the routers' own parsers, so a label always
/// names the view that answered; a path they refuse is `other`.
fn view_of(path: &str) -> &'static str {
    let one_segment = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    };
    match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/v1/images" => "directory",
        "/v1/vulnerabilities" => "aggregate",
        "/v1/openapi.json" => "openapi",
        "/" => "page_directory",
        "/vulnerabilities" => "page_vulnerabilities",
        p if p.starts_with("/v1/docs") => "docs",
        _ if one_segment("/v1/vulnerabilities/") => "advisory",
        _ if one_segment("/vulnerabilities/") => "page_advisory",
        _ if one_segment("/assets/") => "assets",
        p => {
            if let Some(rest) = p.strip_prefix("/v1/images/") {
                image_view(rest)
            } else if let Some(rest) = p.strip_prefix("/images/") {
                crate::ui::page_view(rest)
            } else {
                "other"
            }
        }
    }
}

/// The view of a path under `/v1/images/`.
fn image_view(rest: &str) -> &'static str {
    match super::routes::parse(rest) {
        Ok(ImageRoute::Overview(_)) => "overview",
        Ok(ImageRoute::Tags(_)) => "tags",
        Ok(ImageRoute::Compare(..)) => "compare",
        Ok(ImageRoute::View(view, _, Target::Tag(_))) => match view {
            View::Details => "details",
            View::Sbom => "sbom",
            View::Vulnerabilities => "vulnerabilities",
            View::History => "history",
            View::Provenance => "provenance",
        },
        // Addressed by digest: `releases/{digest}/…`.
        Ok(ImageRoute::View(..)) => "releases",
        Err(_) => "other",
    }
}

/// Counts every response, a 503 for a request cut off by its deadline included.
pub async fn count(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let view = view_of(request.uri().path());
    crate::server::record_status(request, next, |status| {
        *state
            .http
            .0
            .lock()
            .expect("counter lock")
            .entry((view, status.as_u16()))
            .or_default() += 1;
    })
    .await
}

/// The exposition.
pub async fn metrics(State(state): State<Shared>) -> String {
    let mut out = String::new();
    out.push_str("# HELP refcat_http_requests_total HTTP requests served, by view and status.\n");
    out.push_str("# TYPE refcat_http_requests_total counter\n");
    for ((view, status), n) in state.http.0.lock().expect("counter lock").iter() {
        let _ = writeln!(
            out,
            "refcat_http_requests_total{{view=\"{view}\",status=\"{status}\"}} {n}"
        );
    }
    out.push_str("# HELP refcat_catalog_aggregates_total Times the catalog-wide aggregate was read or walked (once per cache TTL at most, however many views read it).\n");
    out.push_str("# TYPE refcat_catalog_aggregates_total counter\n");
    let _ = writeln!(
        out,
        "refcat_catalog_aggregates_total {}",
        state.cache.aggregates_made()
    );
    state.client.counter().write_prometheus(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_a_fixed_set_of_views() {
        for (path, view) in [
            ("/v1/images/a/b/tags", "tags"),
            ("/v1/images/a/sbom/1", "sbom"),
            ("/v1/images/a/details/1", "details"),
            ("/v1/images/a/vulnerabilities/1", "vulnerabilities"),
            ("/v1/images/a/history/1", "history"),
            ("/v1/images/a/provenance/1", "provenance"),
            ("/v1/images/a/compare/1...2", "compare"),
            ("/v1/images/a/releases/sha256:0000000000000000000000000000000000000000000000000000000000000000/sbom", "releases"),
            ("/v1/images/a/b", "overview"),
            ("/v1/images/A", "other"),
            ("/v1/vulnerabilities/CVE-2024-1", "advisory"),
            ("/", "page_directory"),
            ("/vulnerabilities", "page_vulnerabilities"),
            ("/vulnerabilities/CVE-2024-1", "page_advisory"),
            ("/images/a/b", "page_overview"),
            ("/images/a/tags/1", "page_tag"),
            ("/images/a/tags/1/artifacts", "page_artifacts"),
            ("/images/a/history/1", "page_history"),
            ("/images/a/compare/1...2", "page_compare"),
            ("/assets/app.js", "assets"),
            ("/whatever", "other"),
        ] {
            assert_eq!(view_of(path), view, "{path}");
        }
    }
}
