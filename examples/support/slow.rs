//! A registry that answers slowly: a proxy that waits a fixed time before it forwards
//! each request, as a distant or overloaded registry would, so that a benchmark can
//! count how many round trips a view makes one after another.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;

#[derive(Clone)]
struct Upstream {
    host: String,
    latency: Duration,
    http: reqwest::Client,
}

/// Starts the proxy in front of `host`; its `host:port`.
pub async fn start(host: &str, latency: Duration) -> anyhow::Result<String> {
    let upstream = Upstream {
        host: host.to_string(),
        latency,
        http: reqwest::Client::new(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let app = axum::Router::new().fallback(forward).with_state(upstream);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    tokio::time::sleep(upstream.latency).await;
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers;
    headers.remove(axum::http::header::HOST);
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let sent = upstream
        .http
        .request(parts.method, format!("http://{}{path}", upstream.host))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let mut response = Response::builder();
    match sent {
        Ok(answer) => {
            response = response.status(answer.status());
            for (name, value) in answer.headers() {
                response = response.header(name, value);
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            response.body(Body::from(bytes)).expect("a valid response")
        }
        Err(e) => response
            .status(502)
            .body(Body::from(e.to_string()))
            .expect("a valid response"),
    }
}
