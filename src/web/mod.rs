//! What the HTTP catalog's two faces, the API (`crate::api`) and the web pages
//! (`crate::ui`), share: the state every handler reads, who may read it, the rendered
//! view cache, answers with ETags, problem+json, the path grammar both read, and the
//! counters behind `/metrics`. Neither face imports the other.

pub mod access;
mod cache;
pub mod metrics;
mod paths;
mod problem;

use axum::extract::Query;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

pub use crate::cache::CacheConfig;
pub use access::Access;
pub(crate) use access::Viewer;
pub(crate) use cache::Rendered;
pub use cache::ViewCache;
pub use paths::compared;
pub use problem::Problem;

use crate::catalog::aggregate;
use crate::catalog::repositories::Repositories;
use crate::catalog::sbom;
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
    if let Some(link) = rendered.link.as_deref() {
        // Built from a parsed path and numbers.
        h.insert(header::LINK, HeaderValue::from_str(link).expect("ascii"));
    }
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
