//! `/metrics` in the Prometheus text format: HTTP requests by view and status, and the
//! registry requests the catalog made, by method and kind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::Shared;

/// HTTP requests by (view, status).
#[derive(Clone, Debug, Default)]
pub struct HttpCounter(Arc<Mutex<BTreeMap<(&'static str, u16), u64>>>);

/// The view a path belongs to: a small, fixed set of label values.
fn view_of(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let last_two = |word: &str| segments.iter().rev().take(3).any(|s| *s == word);
    match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/v1/images" => "directory",
        "/v1/vulnerabilities" => "aggregate",
        "/v1/openapi.json" => "openapi",
        p if p.starts_with("/v1/docs") => "docs",
        p if p.starts_with("/v1/images/") => {
            if segments.last() == Some(&"tags") {
                "tags"
            } else if last_two("releases") {
                "releases"
            } else if last_two("details") {
                "details"
            } else if last_two("sbom") {
                "sbom"
            } else if last_two("vulnerabilities") {
                "vulnerabilities"
            } else if last_two("history") {
                "history"
            } else {
                "overview"
            }
        }
        _ => "other",
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
        assert_eq!(view_of("/v1/images/a/b/tags"), "tags");
        assert_eq!(view_of("/v1/images/a/sbom/1"), "sbom");
        assert_eq!(view_of("/v1/images/a/releases/sha256:x/sbom"), "releases");
        assert_eq!(view_of("/v1/images/a/b"), "overview");
        assert_eq!(view_of("/whatever"), "other");
    }
}
