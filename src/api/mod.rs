//! The stateless read API: axum routes over the [`crate::catalog`] views. Nothing here
//! talks to the registry except through `catalog`; errors are problem+json.

mod problem;
pub mod routes;

use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

pub use problem::Problem;
use routes::{ImageRoute, View};

use crate::catalog::sbom::SbomQuery;
use crate::catalog::vulnerabilities::VulnerabilityQuery;
use crate::catalog::{details, sbom, tags, vulnerabilities};
use crate::registry::Client;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The registry the catalog is read from.
    pub client: Client,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/v1/images/{*path}", get(images))
        .fallback(|uri: Uri| async move { Problem::not_found(format!("no route {uri}")) })
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> Response {
    match state.client.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => Problem::from(crate::catalog::CatalogError::from(e)).into_response(),
    }
}

fn query<T: serde::de::DeserializeOwned + Default>(uri: &Uri) -> Result<T, Problem> {
    match uri.query() {
        None => Ok(T::default()),
        Some(_) => Query::<T>::try_from_uri(uri)
            .map(|q| q.0)
            .map_err(|e| Problem::bad_request(format!("invalid query: {}", e.body_text()))),
    }
}

async fn images(
    State(state): State<AppState>,
    Path(path): Path<String>,
    uri: Uri,
) -> Result<Response, Problem> {
    let client = &state.client;
    let response = match routes::parse(&path)? {
        ImageRoute::Tags(repository) => {
            Json(tags::tags(client, &repository).await?).into_response()
        }
        ImageRoute::View(view, repository, target) => {
            let reference = routes::reference(client.registry(), repository, target);
            match view {
                View::Details => Json(details::details(client, &reference).await?).into_response(),
                View::Sbom => {
                    let q: SbomQuery = query(&uri)?;
                    Json(sbom::sbom(client, &reference, &q).await?).into_response()
                }
                View::Vulnerabilities => {
                    let q: VulnerabilityQuery = query(&uri)?;
                    Json(vulnerabilities::vulnerabilities(client, &reference, &q).await?)
                        .into_response()
                }
            }
        }
    };
    Ok(response)
}
