//! The stateless read API: axum routes over the [`crate::catalog`] views. Nothing here
//! talks to the registry except through `catalog`; errors are problem+json.

pub mod access;
mod cache;
pub mod metrics;
pub mod openapi;
mod problem;
pub mod routes;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use crate::cache::CacheConfig;
pub use access::Access;
pub(crate) use access::Viewer;
pub(crate) use cache::Rendered;
pub use cache::ViewCache;
pub use problem::Problem;
use routes::{ImageRoute, View};

use crate::catalog::advisory::{self, VulnerabilityId};
use crate::catalog::directory::{self, DirectoryQuery};
use crate::catalog::repositories::Repositories;
use crate::catalog::sbom::SbomQuery;
use crate::catalog::vulnerabilities::VulnerabilityQuery;
use crate::catalog::{
    aggregate, compare, details, history, provenance, sbom, tags, vulnerabilities,
};
use crate::reference::Target;
use crate::registry::Client;
use crate::trust::Trust;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The registry the catalog is read from.
    pub client: Client,
    /// Rendered views.
    pub cache: ViewCache,
    /// The tag that summarises a repository when it has it (else the newest).
    pub default_tag: Option<String>,
    /// Which signatures are checked, and whether failures are hidden.
    pub trust: Trust,
    /// Responses served, for `/metrics`.
    pub http: metrics::HttpCounter,
    /// The repositories the catalog covers, and where the worker stores the catalog
    /// aggregate (read for `/v1/vulnerabilities`, left out of the directory).
    pub repositories: Repositories,
    /// Package lists parsed from SBOMs, by artifact digest.
    pub packages: sbom::PackageCache,
    /// Who may read the catalog, and with whose credentials.
    pub access: Access,
}

impl AppState {
    /// State for `client` with default caching, judging artifacts with `trust` (which
    /// also judges a stored repository list).
    pub fn new(client: Client, trust: Trust) -> Self {
        AppState {
            client,
            cache: ViewCache::new(CacheConfig::default()),
            default_tag: None,
            repositories: Repositories::every(trust.clone()),
            trust,
            http: metrics::HttpCounter::default(),
            packages: sbom::PackageCache::default(),
            access: Access::Open,
        }
    }
}

/// The state as handlers see it: one allocation, so each request's copy is a refcount.
pub(crate) type Shared = std::sync::Arc<AppState>;

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let state = Shared::new(state);
    let routes = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/images", get(directory_view))
        .route("/v1/images/{*path}", get(images))
        .route("/v1/vulnerabilities", get(aggregate_view))
        .route("/v1/vulnerabilities/{id}", get(advisory_view))
        .merge(crate::ui::routes())
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/v1/docs")
                .url("/v1/openapi.json", openapi::document()),
        )
        .fallback(|uri: Uri| async move { Problem::not_found(format!("no route {uri}")) });
    // An open catalog lets everyone in: no guard to pass on every request.
    let routes = match state.access {
        Access::Open => routes,
        _ => routes.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        )),
    };
    routes
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count,
        ))
        .with_state(state)
}

/// How long `/readyz` waits for the registry: a probe must answer in seconds, not after
/// the client's retries.
const READY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

async fn ready(State(state): State<Shared>) -> Response {
    match tokio::time::timeout(READY_DEADLINE, state.client.ping()).await {
        Ok(Ok(())) => "ready".into_response(),
        // Under pass-through the registry wants each caller's credentials: it answered.
        Ok(Err(e)) if e.refused_a_caller() => "ready".into_response(),
        Ok(Err(e)) => Problem::from(crate::catalog::CatalogError::from(e)).into_response(),
        Err(_) => Problem::unavailable(
            format!("the registry did not answer within {READY_DEADLINE:?}"),
            5,
        )
        .into_response(),
    }
}

/// The query parameters of `uri`, or 400 naming what is wrong.
pub(crate) fn query<T: serde::de::DeserializeOwned + Default>(uri: &Uri) -> Result<T, Problem> {
    match uri.query() {
        None => Ok(T::default()),
        Some(_) => Query::<T>::try_from_uri(uri)
            .map(|q| q.0)
            .map_err(|e| Problem::bad_request(format!("invalid query: {}", e.body_text()))),
    }
}

/// Sends a cached view with its ETag and Cache-Control, or 304 when the client has it.
pub(crate) fn respond(rendered: &Rendered, headers: &HeaderMap, cache_control: &str) -> Response {
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
            [(header::CONTENT_TYPE, rendered.content_type)],
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
        HeaderValue::from_str(cache_control).expect("ascii"),
    );
    response
}

/// Cache-Control for what lives for the cache TTL.
pub(crate) fn live(state: &AppState) -> String {
    format!("public, max-age={}", state.cache.ttl.as_secs())
}

/// A view cached for the TTL under `key`, as JSON with its ETag (304 when the client
/// has it).
async fn live_json<T: serde::Serialize>(
    state: &AppState,
    headers: &HeaderMap,
    key: String,
    view: impl std::future::Future<Output = Result<T, crate::catalog::CatalogError>>,
) -> Result<Response, Problem> {
    let rendered = state
        .cache
        .get(key, false, async { Ok(Rendered::json(&view.await?)) })
        .await?;
    Ok(respond(&rendered, headers, &live(state)))
}

async fn directory_view(
    Viewer(state): Viewer,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, Problem> {
    let q: DirectoryQuery = query(&uri)?;
    let view = directory::directory(
        &state.client,
        &q,
        state.default_tag.as_deref(),
        &state.trust,
        &state.repositories,
    );
    live_json(&state, &headers, uri.to_string(), view).await
}

/// The catalog aggregate, once per TTL for every view that reads it.
pub(crate) async fn aggregate(
    state: &AppState,
) -> Result<std::sync::Arc<aggregate::Aggregate>, Problem> {
    let compute = aggregate::read(
        &state.client,
        state.default_tag.as_deref(),
        &state.trust,
        &state.repositories,
    );
    state.cache.aggregate(compute).await
}

async fn aggregate_view(Viewer(state): Viewer, headers: HeaderMap) -> Result<Response, Problem> {
    let rendered = state
        .cache
        .get("/v1/vulnerabilities".into(), false, async {
            Ok(Rendered::json(aggregate(&state).await?.as_ref()))
        })
        .await?;
    Ok(respond(&rendered, &headers, &live(&state)))
}

async fn advisory_view(
    Viewer(state): Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id: VulnerabilityId = id.parse().map_err(Problem::from)?;
    let key = format!("/v1/vulnerabilities/{}", id.as_str());
    let rendered = state
        .cache
        .get(key, false, async {
            let aggregate = aggregate(&state).await?;
            let view = advisory::advisory(&state.client, &id, &aggregate, &state.trust).await?;
            Ok(Rendered::json(&view))
        })
        .await?;
    Ok(respond(&rendered, &headers, &live(&state)))
}

async fn images(
    Viewer(state): Viewer,
    Path(path): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, Problem> {
    let route = routes::parse(&path)?;
    // Only a digest's platforms and configs never change. Its SBOM view names the newest
    // SBOM artifact, which may not exist yet (or be replaced), and its vulnerabilities
    // change with each Grype DB.
    let immutable = matches!(
        &route,
        ImageRoute::View(View::Details, _, Target::Digest(_))
    );
    let key = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let rendered = state
        .cache
        .get(key, immutable, render(&state, route, uri))
        .await?;
    let cache_control = if immutable {
        "public, max-age=31536000, immutable".to_string()
    } else {
        live(&state)
    };
    Ok(respond(&rendered, &headers, &cache_control))
}

async fn render(state: &AppState, route: ImageRoute, uri: Uri) -> Result<Rendered, Problem> {
    let client = &state.client;
    Ok(match route {
        ImageRoute::Overview(repository) => Rendered::json(
            &directory::overview(
                client,
                &repository,
                state.default_tag.as_deref(),
                &state.trust,
            )
            .await?,
        ),
        ImageRoute::Tags(repository) => {
            Rendered::json(&tags::tags(client, &repository, &state.trust).await?)
        }
        ImageRoute::Compare(repository, from, to) => Rendered::json(
            &compare::compare(
                client,
                &repository,
                (from, to),
                &state.trust,
                &state.packages,
            )
            .await?,
        ),
        ImageRoute::View(view, repository, target) => {
            let reference = routes::reference(client.registry(), repository, target);
            match view {
                View::Details => Rendered::json(&details::details(client, &reference).await?),
                View::Provenance => {
                    Rendered::json(&provenance::provenance(client, &reference, &state.trust).await?)
                }
                View::History => {
                    let Target::Tag(stream) = &reference.target else {
                        return Err(Problem::not_found("history is addressed by a stream tag"));
                    };
                    Rendered::json(
                        &history::history(client, &reference.repository, stream, &state.trust)
                            .await?,
                    )
                }
                View::Sbom => {
                    let q: SbomQuery = query(&uri)?;
                    Rendered::json(
                        &sbom::sbom(client, &reference, &q, &state.trust, &state.packages).await?,
                    )
                }
                View::Vulnerabilities => {
                    let q: VulnerabilityQuery = query(&uri)?;
                    Rendered::json(
                        &vulnerabilities::vulnerabilities(client, &reference, &q, &state.trust)
                            .await?,
                    )
                }
            }
        }
    })
}
