//! Serving HTTP with bounds, for `refcat serve` and the worker's intake. Plain
//! `axum::serve` waits forever for a client's headers and accepts every connection, so
//! a few thousand half-sent requests hold as many descriptors and starve everyone else:
//! here headers must arrive within a deadline, every request has one, and connections
//! beyond a cap wait in the listen backlog instead of taking descriptors.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// The bounds a server keeps.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a request may take in all, its body included; later ones get 503.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What the deadline's page may load: nothing (it has no script, style or image).
const TOO_SLOW_CSP: &str =
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The answer to a request that ran past its deadline: 503 with `Retry-After`, as
/// problem+json like every other error refcat's servers give, or as a small HTML page
/// for a browser (one that asks for `text/html`). Which one depends on `Accept`, so it
/// says so in `Vary`.
fn too_slow(deadline: Duration, html: bool) -> axum::response::Response {
    let detail = format!("the request took longer than {deadline:?}; the registry may be slow");
    let (content_type, body) = if html {
        (
            "text/html; charset=utf-8",
            format!(
                "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Request timeout</title>\
                 <h1>503 Request timeout</h1><p>{detail}. Try again in 5 seconds.</p><p><a href=\"/\">All images</a></p></html>"
            ),
        )
    } else {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": "Request timeout",
            "status": 503,
            "detail": detail,
        });
        ("application/problem+json", body.to_string())
    };
    let mut response = axum::response::Response::new(axum::body::Body::from(body));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::RETRY_AFTER, "5"),
        (header::VARY, "Accept"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, TOO_SLOW_CSP),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Put on every request by [`serve`]: whether its deadline passed. The deadline drops a
/// request's handler, counting middleware included, so that middleware learns from this
/// that the request was answered 503 rather than abandoned by its client.
#[derive(Clone, Debug, Default)]
pub struct Deadline(Arc<AtomicBool>);

impl Deadline {
    /// Whether the request ran past its deadline.
    pub fn passed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `next` and passes the status of its answer to `record`: the handler's, or 503
/// when the deadline cut it off. A request whose client went away is not recorded.
pub async fn record_status<F: FnOnce(StatusCode)>(
    request: axum::extract::Request,
    next: axum::middleware::Next,
    record: F,
) -> axum::response::Response {
    struct Pending<F: FnOnce(StatusCode)> {
        deadline: Option<Deadline>,
        record: Option<F>,
    }
    impl<F: FnOnce(StatusCode)> Drop for Pending<F> {
        fn drop(&mut self) {
            let cut_off = self.deadline.as_ref().is_some_and(Deadline::passed);
            if let (Some(record), true) = (self.record.take(), cut_off) {
                record(StatusCode::SERVICE_UNAVAILABLE);
            }
        }
    }
    let mut pending = Pending {
        deadline: request.extensions().get::<Deadline>().cloned(),
        record: Some(record),
    };
    let response = next.run(request).await;
    if let Some(record) = pending.record.take() {
        record(response.status());
    }
    response
}

/// How long open connections get to finish after `shutdown`.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then lets
/// open connections finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let deadline = limits.request_timeout;
    let app = app.layer(axum::middleware::from_fn(
        move |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
            let passed = Deadline::default();
            request.extensions_mut().insert(passed.clone());
            let html = request
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
            let handler = next.run(request);
            tokio::pin!(handler);
            match tokio::time::timeout(deadline, &mut handler).await {
                Ok(response) => response,
                // Marked before the handler is dropped (at the end of this block), so
                // that what it counts sees the 503.
                Err(_) => {
                    passed.0.store(true, Ordering::Relaxed);
                    too_slow(deadline, html)
                }
            }
        },
    ));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or similar: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that sends nothing in time, or breaks off, only ends its own
            // connection.
            let _ = connection.await;
            drop(slot);
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
    Ok(())
}
