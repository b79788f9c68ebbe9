//! The stateless read API: axum routes over the [`crate::catalog`] views. Nothing here
//! talks to the registry except through `catalog`; errors are problem+json.

pub mod openapi;
pub mod routes;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use routes::{ImageRoute, View};

use crate::catalog::advisory::{self, VulnerabilityId};
use crate::catalog::directory::{self, DirectoryQuery};
use crate::catalog::sbom::SbomQuery;
use crate::catalog::tags::TagsQuery;
use crate::catalog::vulnerabilities::VulnerabilityQuery;
use crate::catalog::{compare, details, history, provenance, sbom, tags, vulnerabilities};
use crate::reference::Target;
use crate::web::{aggregate, live, query, respond, AppState, Problem, Rendered, Shared, Viewer};

/// The API's routes: health, readiness and every `/v1` view. `crate::app` lays them
/// beside the pages, the OpenAPI document and Swagger UI.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/v1/images", get(directory_view))
        .route("/v1/images/{*path}", get(images))
        .route("/v1/vulnerabilities", get(aggregate_view))
        .route("/v1/vulnerabilities/{id}", get(advisory_view))
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/v1/docs")
                .url("/v1/openapi.json", openapi::document()),
        )
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
                state.repositories.aggregate(),
            )
            .await?,
        ),
        ImageRoute::Tags(repository) => {
            let q: TagsQuery = query(&uri)?;
            let stored_in = state.repositories.aggregate();
            let view = tags::tags(client, &repository, &q, &state.trust, stored_in).await?;
            let path = format!("/v1/images/{repository}/tags");
            Rendered::json(&view).paged(&path, view.page, view.per_page, view.pages())
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
