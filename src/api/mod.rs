//! The stateless read API: axum routes over the [`crate::catalog`] views. Nothing here
//! talks to the registry except through `catalog`; errors are problem+json.

mod cache;
mod problem;
pub mod routes;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use cache::Rendered;
pub use cache::{CacheConfig, ViewCache};
pub use problem::Problem;
use routes::{ImageRoute, View};

use crate::catalog::sbom::SbomQuery;
use crate::catalog::vulnerabilities::VulnerabilityQuery;
use crate::catalog::{details, sbom, tags, vulnerabilities};
use crate::reference::Target;
use crate::registry::Client;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The registry the catalog is read from.
    pub client: Client,
    /// Rendered views.
    pub cache: ViewCache,
}

impl AppState {
    /// State for `client` with default caching.
    pub fn new(client: Client) -> Self {
        AppState {
            client,
            cache: ViewCache::new(CacheConfig::default()),
        }
    }
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/v1/images/{*path}", get(images))
        .fallback(|uri: Uri| async move { Problem::not_found(format!("no route {uri}")) })
        .layer(tower_http::compression::CompressionLayer::new())
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
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, Problem> {
    let route = routes::parse(&path)?;
    // A digest's config and SBOM never change; its vulnerabilities do, with each new
    // Grype DB.
    let immutable = matches!(
        &route,
        ImageRoute::View(View::Details | View::Sbom, _, Target::Digest(_))
    );
    let key = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let rendered = state
        .cache
        .get(key, immutable, render(state.client.clone(), route, uri))
        .await?;
    let cache_control = if immutable {
        "public, max-age=31536000, immutable".to_string()
    } else {
        format!("public, max-age={}", state.cache.ttl.as_secs())
    };
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == rendered.etag)
        });
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            rendered.body.clone(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&rendered.etag).expect("hex etags are valid headers"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&cache_control).expect("ascii"),
    );
    Ok(response)
}

async fn render(client: Client, route: ImageRoute, uri: Uri) -> Result<Rendered, Problem> {
    let client = &client;
    Ok(match route {
        ImageRoute::Tags(repository) => Rendered::json(&tags::tags(client, &repository).await?),
        ImageRoute::View(view, repository, target) => {
            let reference = routes::reference(client.registry(), repository, target);
            match view {
                View::Details => Rendered::json(&details::details(client, &reference).await?),
                View::Sbom => {
                    let q: SbomQuery = query(&uri)?;
                    Rendered::json(&sbom::sbom(client, &reference, &q).await?)
                }
                View::Vulnerabilities => {
                    let q: VulnerabilityQuery = query(&uri)?;
                    Rendered::json(&vulnerabilities::vulnerabilities(client, &reference, &q).await?)
                }
            }
        }
    })
}
