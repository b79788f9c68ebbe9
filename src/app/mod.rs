//! The catalog `refcat serve` serves: the API's routes and the pages side by side,
//! behind the access guard, counted for `/metrics` and compressed.

mod labels;

use axum::extract::{Request, State};
use axum::http::Uri;
use axum::middleware::{from_fn_with_state, Next};
use axum::routing::get;
use axum::Router;

use crate::web::access::{self, Access};
use crate::web::metrics;
use crate::web::{AppState, Problem, Shared};

/// Every route of the catalog over `state`.
pub fn router(state: AppState) -> Router {
    let state = Shared::new(state);
    let routes = crate::api::routes()
        .merge(crate::ui::routes())
        .route("/metrics", get(metrics::metrics))
        .fallback(|uri: Uri| async move { Problem::not_found(format!("no route {uri}")) });
    // An open catalog lets everyone in: no guard to pass on every request. A refusal is
    // a page for a browser.
    let routes = match state.access {
        Access::Open => routes,
        _ => routes.layer(from_fn_with_state(
            state.clone(),
            |state: State<Shared>, request: Request, next: Next| {
                access::guard(state, request, next, crate::ui::error_page)
            },
        )),
    };
    routes
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(from_fn_with_state(
            state.clone(),
            |state: State<Shared>, request: Request, next: Next| {
                metrics::count(state, request, next, labels::view_of)
            },
        ))
        .with_state(state)
}
