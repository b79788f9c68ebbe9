//! Serving HTTP with bounds, for `refcat serve` and the worker's intake. Plain
//! `axum::serve` waits forever for a client's headers and accepts every connection, so
//! a few thousand half-sent requests hold as many descriptors and starve everyone else:
//! here headers must arrive within a deadline, every request has one, and connections
//! are capped below the limit on descriptors. At the cap a new connection takes the
//! place of the one idle longest (no request in progress: a silent or half-sent one, or
//! a keep-alive between requests), so that clients who hold connections open cannot
//! keep a real request out.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, StatusCode};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// The bounds a server keeps.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; at the cap a new one takes the place of the one
    /// idle longest, or waits while every one has a request in progress.
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

/// Descriptors a process keeps free of clients: for registry connections (the client's
/// requests in flight and its idle pooled ones), scanners' pipes and scratch files, the
/// broker and the runtime's own.
pub const RESERVED_DESCRIPTORS: usize = 256;

/// Raises this process's soft limit on open descriptors to its hard limit: the soft one
/// is often 1,024, far below what the hard one allows. The soft limit then in force,
/// or `None` when it cannot be read.
pub fn raise_descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    let before = limit.rlim_cur;
    if before < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = before,
                to = raised.rlim_cur,
                "raised the limit on open descriptors to the hard limit"
            );
            return Some(raised.rlim_cur);
        }
        tracing::warn!(
            soft = before,
            hard = limit.rlim_max,
            error = %std::io::Error::last_os_error(),
            "cannot raise the limit on open descriptors to the hard limit"
        );
    }
    Some(before)
}

impl Limits {
    /// These limits with the connection cap lowered, if need be, so that clients leave
    /// [`RESERVED_DESCRIPTORS`] of `descriptors` (the soft limit) free, and never take
    /// more than three quarters of a small limit.
    pub fn within_descriptors(self, descriptors: u64) -> Limits {
        let descriptors = usize::try_from(descriptors).unwrap_or(usize::MAX);
        let room = descriptors
            .saturating_sub(RESERVED_DESCRIPTORS)
            .max(descriptors / 4)
            .max(1);
        Limits {
            max_connections: self.max_connections.min(room),
            ..self
        }
    }

    /// [`Limits::within_descriptors`] for this process, its soft limit raised first
    /// (see [`raise_descriptor_limit`]); a lowered cap is logged with the reason.
    pub fn for_this_process(self) -> Limits {
        let Some(descriptors) = raise_descriptor_limit() else {
            return self;
        };
        let fitted = self.within_descriptors(descriptors);
        if fitted.max_connections < self.max_connections {
            tracing::warn!(
                "--max-connections {} lowered to {}: this process may open {descriptors} descriptors, and {} stay free for registry connections, scanners and scratch files (raise the hard limit, e.g. ulimit -Hn or LimitNOFILE=, for more)",
                self.max_connections,
                fitted.max_connections,
                descriptors.saturating_sub(fitted.max_connections as u64),
            );
        }
        fitted
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

/// One connection being served.
#[derive(Debug)]
struct Connection {
    /// Requests it is handling, and since when it has had none (`None` while it has).
    state: Mutex<(usize, Option<Instant>)>,
    /// Told to close to make room for a new connection.
    shed: tokio::sync::Notify,
}

impl Connection {
    fn idle(&self) -> bool {
        self.state.lock().expect("connection lock").0 == 0
    }

    fn begin(self: &Arc<Self>) -> Busy {
        let mut state = self.state.lock().expect("connection lock");
        *state = (state.0 + 1, None);
        Busy(self.clone())
    }
}

/// A request in progress on a connection: while one is, the connection is not shed.
struct Busy(Arc<Connection>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().expect("connection lock");
        let busy = state.0.saturating_sub(1);
        *state = (busy, (busy == 0).then(Instant::now));
    }
}

/// A response body that keeps its request in progress until it is sent (or dropped):
/// a connection still sending a download is not idle.
struct Sending {
    body: axum::body::Body,
    _busy: Busy,
}

impl hyper::body::Body for Sending {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The connections being served.
#[derive(Debug, Default)]
struct Open {
    next: AtomicU64,
    all: Mutex<HashMap<u64, Arc<Connection>>>,
}

impl Open {
    fn add(&self) -> (u64, Arc<Connection>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            state: Mutex::new((0, Some(Instant::now()))),
            shed: tokio::sync::Notify::new(),
        });
        let mut all = self.all.lock().expect("connections lock");
        all.insert(id, connection.clone());
        (id, connection)
    }

    fn remove(&self, id: u64) {
        self.all.lock().expect("connections lock").remove(&id);
    }

    /// Tells the connection idle longest, if there is one, to close.
    fn shed_longest_idle(&self) {
        let all = self.all.lock().expect("connections lock");
        let idle = all
            .values()
            .filter_map(|c| Some((c.state.lock().expect("connection lock").1?, c)))
            .min_by_key(|(since, _)| *since);
        if let Some((_, connection)) = idle {
            connection.shed.notify_one();
        }
    }
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
    let open = Arc::new(Open::default());
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
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
        let slot = loop {
            if let Ok(slot) = slots.clone().try_acquire_owned() {
                break Some(slot);
            }
            // When every connection has a request in progress, the new one waits for
            // the first to end; one chosen as it began a request stays, and another
            // is chosen.
            open.shed_longest_idle();
            tokio::select! {
                () = &mut shutdown => break None,
                slot = slots.clone().acquire_owned() => break Some(slot.expect("the semaphore is never closed")),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        };
        let Some(slot) = slot else { break };
        let (id, tracked) = open.add();
        let app = TowerToHyperService::new(app.clone());
        let busy = tracked.clone();
        let service = hyper::service::service_fn(move |request| {
            let busy = busy.begin();
            let answer = hyper::service::Service::call(&app, request);
            async move {
                let answer = answer.await;
                answer.map(|response| response.map(|body| Sending { body, _busy: busy }))
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let open = open.clone();
        tokio::spawn(async move {
            // A client that sends nothing in time, or breaks off, only ends its own
            // connection.
            tokio::pin!(connection);
            loop {
                tokio::select! {
                    _ = &mut connection => break,
                    // A request that began since it was chosen keeps it open.
                    () = tracked.shed.notified() => if tracked.idle() { break },
                }
            }
            open.remove(id);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_descriptors_free() {
        let cap = |descriptors| {
            Limits::default()
                .within_descriptors(descriptors)
                .max_connections
        };
        assert_eq!(cap(1024), 768);
        assert_eq!(cap(1024 + 256), 1024);
        assert_eq!(cap(1 << 20), 1024);
        assert_eq!(cap(256), 64);
        assert_eq!(cap(0), 1);
    }
}
