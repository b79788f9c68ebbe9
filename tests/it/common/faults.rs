//! A fault-injecting proxy in front of a real registry. Everything it does not break it
//! forwards unchanged, so the registry's own behaviour stays real; only the injected
//! faults are made up.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures_util::StreamExt as _;

/// What to do to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` seconds) without forwarding.
    Status(u16, Option<u64>),
    /// Answer with this status and this distribution error code, without forwarding.
    Error(u16, &'static str),
    /// Wait this long, then forward.
    Delay(Duration),
    /// Forward (the registry acts on it), then wait this long before answering: an
    /// answer lost to a client's timeout.
    Late(Duration),
    /// Forward, then flip one byte of the body.
    Corrupt,
    /// Forward, then send half the body and break the connection.
    Truncate,
    /// Answer 200 with this body and content type, without forwarding.
    Replace(Vec<u8>, &'static str),
}

/// A fault for the next `times` requests whose method is `method` and whose path
/// contains `path`.
#[derive(Clone, Debug)]
pub struct Rule {
    pub method: Method,
    pub path: String,
    pub times: usize,
    pub fault: Fault,
}

impl Rule {
    pub fn new(method: Method, path: &str, times: usize, fault: Fault) -> Rule {
        Rule {
            method,
            path: path.to_string(),
            times,
            fault,
        }
    }
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub method: Method,
    pub path: String,
    /// The user of a Basic `Authorization`, if one was sent.
    pub user: Option<String>,
}

#[derive(Default)]
struct Shared {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
    /// Requests received and not yet answered, and the most there were at once.
    in_flight: usize,
    most_in_flight: usize,
}

/// Counts a request as in flight until it is answered (its response built and handed
/// to the server to send).
struct InFlight(Arc<Mutex<Shared>>);

impl InFlight {
    fn new(shared: &Arc<Mutex<Shared>>) -> Self {
        let mut counts = shared.lock().unwrap();
        counts.in_flight += 1;
        counts.most_in_flight = counts.most_in_flight.max(counts.in_flight);
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().unwrap().in_flight -= 1;
    }
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    shared: Arc<Mutex<Shared>>,
}

/// A running proxy; it stops with the test's runtime.
pub struct FaultProxy {
    /// `127.0.0.1:port` to point clients at.
    pub host: String,
    shared: Arc<Mutex<Shared>>,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (`host:port`, plain HTTP).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let proxy = Proxy {
            upstream: upstream.to_string(),
            http: reqwest::Client::new(),
            shared: shared.clone(),
        };
        let app = axum::Router::new().fallback(handle).with_state(proxy);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FaultProxy { host, shared }
    }

    /// Adds a fault; rules are tried in the order they were added.
    pub fn inject(&self, rule: Rule) {
        self.shared.lock().unwrap().rules.push(rule);
    }

    /// Removes every fault still pending: from now on the proxy only forwards.
    pub fn clear(&self) {
        self.shared.lock().unwrap().rules.clear();
    }

    /// The most requests it was answering at once.
    pub fn most_in_flight(&self) -> usize {
        self.shared.lock().unwrap().most_in_flight
    }

    /// Every request seen so far.
    pub fn all_seen(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().seen.clone()
    }

    /// Every request seen with `method` whose path contains `path`.
    pub fn seen(&self, method: Method, path: &str) -> Vec<Seen> {
        self.shared
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|s| s.method == method && s.path.contains(path))
            .cloned()
            .collect()
    }
}

async fn handle(State(proxy): State<Proxy>, request: Request) -> Response {
    let _in_flight = InFlight::new(&proxy.shared);
    let method = request.method().clone();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let fault = {
        let mut shared = proxy.shared.lock().unwrap();
        let fault = shared
            .rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && path_and_query.contains(&r.path))
            .map(|r| {
                r.times -= 1;
                r.fault.clone()
            });
        let user = basic_user(request.headers());
        shared.seen.push(Seen {
            at: Instant::now(),
            method: method.clone(),
            path: path_and_query.clone(),
            user,
        });
        fault
    };
    match fault {
        Some(Fault::Status(code, retry_after)) => {
            let mut response = Response::new(Body::from(
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"injected fault"}]}"#,
            ));
            *response.status_mut() = StatusCode::from_u16(code).unwrap();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(seconds));
            }
            response
        }
        Some(Fault::Error(code, error)) => {
            let body =
                serde_json::json!({ "errors": [{ "code": error, "message": "injected fault" }] });
            let mut response = Response::new(Body::from(body.to_string()));
            *response.status_mut() = StatusCode::from_u16(code).unwrap();
            response
        }
        Some(Fault::Replace(body, content_type)) => {
            let mut response = Response::new(Body::from(body));
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static(content_type));
            response
        }
        Some(Fault::Delay(wait)) => {
            tokio::time::sleep(wait).await;
            forward(&proxy, request, &path_and_query).await.0
        }
        Some(Fault::Late(wait)) => {
            let answer = forward(&proxy, request, &path_and_query).await.0;
            tokio::time::sleep(wait).await;
            answer
        }
        Some(Fault::Corrupt) => {
            let (mut response, mut bytes) = forward(&proxy, request, &path_and_query).await;
            if let Some(b) = bytes.get_mut(0) {
                *b ^= 0x20;
            }
            *response.body_mut() = Body::from(bytes);
            response
        }
        Some(Fault::Truncate) => {
            let (mut response, bytes) = forward(&proxy, request, &path_and_query).await;
            let half = bytes[..bytes.len() / 2].to_vec();
            // Keep the full Content-Length so the break is visible to the client.
            // The pause lets the head and the first half reach the client before the cut.
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Err::<Vec<u8>, _>(std::io::Error::other("injected: connection cut"))
            });
            let chunks = futures_util::stream::iter([Ok(half)]).chain(cut);
            *response.body_mut() = Body::from_stream(chunks);
            response
        }
        None => forward(&proxy, request, &path_and_query).await.0,
    }
}

/// The user name in a Basic `Authorization` header.
fn basic_user(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let value = headers.get("authorization")?.to_str().ok()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.strip_prefix("Basic ")?)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split_once(':')?.0.to_string())
}

/// Sends `request` upstream; the response with its body also returned as bytes.
async fn forward(proxy: &Proxy, request: Request, path_and_query: &str) -> (Response, Vec<u8>) {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut headers = parts.headers.clone();
    headers.remove("host");
    let upstream = proxy
        .http
        .request(
            parts.method,
            format!("http://{}{path_and_query}", proxy.upstream),
        )
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = upstream.status();
    let mut headers: HeaderMap = upstream.headers().clone();
    // The body is sent whole, with its own length: the upstream's framing (a chunked
    // answer, as zot gives for a long referrers list) does not carry over.
    for hop in ["transfer-encoding", "connection", "keep-alive"] {
        headers.remove(hop);
    }
    let bytes = upstream.bytes().await.unwrap().to_vec();
    let mut response = Response::new(Body::from(bytes.clone()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    (response, bytes)
}
