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

/// Counts every response under the view `label` names for its path, a 503 for a request
/// cut off by its deadline included.
pub(crate) async fn count(
    State(state): State<Shared>,
    request: Request,
    next: Next,
    label: fn(&str) -> &'static str,
) -> Response {
    let view = label(request.uri().path());
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
