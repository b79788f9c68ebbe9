//! Sending one logical request: authentication, per-attempt timeouts, retries with
//! backoff for idempotent requests, and counting.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};

use super::auth::{basic_header, Challenge};
use super::client::Client;
use super::counter::RequestKind;
use super::credentials::{Credentials, Secret};
use super::error::{is_transient, retry_after, RegistryError};

/// One request to send, rebuildable for each attempt.
#[derive(Clone, Debug)]
pub(super) struct Request {
    pub method: Method,
    /// Path and query below the registry base, or an absolute URL on the same registry.
    pub url: String,
    pub kind: RequestKind,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// The auth scope, e.g. `repository:a/b:pull`.
    pub scope: String,
    /// Safe to send again after a failure or timeout.
    pub idempotent: bool,
    /// For messages: `GET manifest a/b:tag`.
    pub what: String,
}

impl Request {
    pub fn new(
        method: Method,
        kind: RequestKind,
        url: String,
        scope: String,
        what: String,
    ) -> Self {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE
        );
        Request {
            method,
            url,
            kind,
            headers: HeaderMap::new(),
            body: None,
            scope,
            idempotent,
            what,
        }
    }

    pub fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub fn body(mut self, body: Bytes) -> Self {
        self.body = Some(body);
        self
    }
}

/// A pull scope for `repository`.
pub(super) fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// A pull+push scope for `repository`.
pub(super) fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

impl Client {
    /// Checks that the registry answers `GET /v2/` (with credentials, if it wants them).
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let what = "GET /v2/".to_string();
        let req = Request::new(
            reqwest::Method::GET,
            RequestKind::Base,
            "/v2/".into(),
            String::new(),
            what.clone(),
        );
        let response = self.send(req).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(self.unexpected(response, what).await)
        }
    }

    /// Sends `req`, answering auth challenges and retrying what may be retried.
    /// Returns the response for any status other than 401, 403 and exhausted 429/5xx.
    pub(super) async fn send(&self, req: Request) -> Result<Response, RegistryError> {
        let config = &self.inner.config;
        let mut attempt = 0;
        let mut authenticated_after_challenge = false;
        loop {
            attempt += 1;
            let (base, probing) = self.base();
            let absolute = req.url.starts_with("http://") || req.url.starts_with("https://");
            let url = if absolute {
                req.url.clone()
            } else {
                format!("{base}{}", req.url)
            };
            let probing = probing && !absolute;
            let mut builder = self
                .inner
                .http
                .request(req.method.clone(), &url)
                .headers(req.headers.clone());
            if let Some(auth) = self.auth_header(&req.scope) {
                builder = builder.header(AUTHORIZATION, auth.expose());
            }
            if let Some(body) = &req.body {
                builder = builder.body(body.clone());
            }
            let outcome = {
                // Held until the answer's head arrives, not while backing off.
                let _in_flight = self
                    .inner
                    .in_flight
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                tokio::time::timeout(config.request_timeout, builder.send()).await
            };
            // A loopback registry is tried over HTTPS first; one that answers the TLS
            // hello with plain HTTP is asked again over HTTP, and that first try was no
            // request to it.
            if let Ok(Err(e)) = &outcome {
                match super::tls::handshake(e) {
                    super::tls::Handshake::NotTls if probing => {
                        self.settle_scheme(false);
                        attempt -= 1;
                        continue;
                    }
                    // Not a passing failure: no retry helps.
                    super::tls::Handshake::Untrusted(reason) => {
                        self.inner.counter.record(&req.method, req.kind);
                        return Err(RegistryError::Certificate {
                            registry: config.registry.clone(),
                            what: req.what,
                            reason,
                        });
                    }
                    _ => {}
                }
            }
            self.inner.counter.record(&req.method, req.kind);
            if let (true, Ok(Ok(_))) = (probing, &outcome) {
                self.settle_scheme(true);
            }
            let retryable_left = req.idempotent && attempt < config.max_attempts;
            let response = match outcome {
                Err(_elapsed) if retryable_left => {
                    tracing::warn!(what = %req.what, attempt, "request timed out; retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Err(_elapsed) => {
                    return Err(RegistryError::Timeout {
                        registry: config.registry.clone(),
                        what: req.what,
                        timeout: config.request_timeout,
                        attempts: attempt,
                    })
                }
                Ok(Err(e))
                    if retryable_left && (e.is_connect() || e.is_timeout() || e.is_request()) =>
                {
                    tracing::warn!(what = %req.what, attempt, error = %e.without_url(), "request failed; retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Ok(Err(e)) => {
                    return Err(RegistryError::Connect {
                        registry: config.registry.clone(),
                        what: req.what,
                        source: Arc::new(e.without_url()),
                    })
                }
                Ok(Ok(response)) => response,
            };
            let bearer = matches!(config.credentials, Credentials::Bearer(_));
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse);
            match response.status() {
                // A caller's bearer token is theirs to renew: a refusal is final.
                StatusCode::UNAUTHORIZED if !authenticated_after_challenge && !bearer => {
                    authenticated_after_challenge = true;
                    attempt -= 1;
                    self.answer_challenge(challenge, &req).await?;
                }
                // A fresh token (or the caller's own) that the registry took but that does
                // not grant this: token-auth registries answer 401 where zot answers 403.
                StatusCode::UNAUTHORIZED
                    if challenge.as_ref().is_some_and(Challenge::lacks_scope)
                        && !matches!(config.credentials, Credentials::Anonymous) =>
                {
                    return Err(RegistryError::Forbidden {
                        registry: config.registry.clone(),
                        what: req.what,
                        caller: config.for_caller,
                    })
                }
                StatusCode::UNAUTHORIZED => {
                    let hint = match config.credentials {
                        Credentials::Anonymous => {
                            "the registry requires credentials: pass --username with --password-stdin, or log in with a docker config.json"
                        }
                        _ => "the credentials were rejected: check the username and password",
                    };
                    return Err(RegistryError::Unauthorized {
                        registry: config.registry.clone(),
                        what: req.what,
                        hint,
                        caller: config.for_caller,
                    });
                }
                StatusCode::FORBIDDEN => {
                    return Err(RegistryError::Forbidden {
                        registry: config.registry.clone(),
                        what: req.what,
                        caller: config.for_caller,
                    })
                }
                status if is_transient(status) => {
                    let retry_after = retry_after(response.headers());
                    if retryable_left {
                        let wait = retry_after
                            .unwrap_or_else(|| self.backoff(attempt))
                            .min(config.max_backoff);
                        tracing::warn!(what = %req.what, attempt, status = status.as_u16(), wait_ms = wait.as_millis() as u64, "registry busy or failing; retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(RegistryError::Unavailable {
                        registry: config.registry.clone(),
                        what: req.what,
                        status: status.as_u16(),
                        attempts: attempt,
                        retry_after,
                    });
                }
                status => {
                    if let (true, Some(cache)) = (status.is_success(), &self.inner.cache) {
                        cache.answered(&req.scope);
                    }
                    return Ok(response);
                }
            }
        }
    }

    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let config = &self.inner.config;
        config
            .initial_backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(config.max_backoff)
    }

    fn auth_header(&self, scope: &str) -> Option<Secret> {
        if let Credentials::Bearer(token) = &self.inner.config.credentials {
            return Some(Secret::new(format!("Bearer {}", token.expose())));
        }
        let auth = self.inner.auth.lock().expect("auth lock");
        auth.get(scope).or_else(|| auth.get("")).cloned()
    }

    async fn answer_challenge(
        &self,
        challenge: Option<Challenge>,
        req: &Request,
    ) -> Result<(), RegistryError> {
        let config = &self.inner.config;
        let unauthorized = |hint| RegistryError::Unauthorized {
            registry: config.registry.clone(),
            what: req.what.clone(),
            hint,
            caller: config.for_caller,
        };
        match challenge {
            Some(Challenge::Basic) => {
                let header = basic_header(&config.credentials).ok_or_else(|| {
                    unauthorized("the registry requires credentials: pass --username with --password-stdin, or log in with a docker config.json")
                })?;
                self.inner
                    .auth
                    .lock()
                    .expect("auth lock")
                    .insert(String::new(), header);
                Ok(())
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
                ..
            }) => {
                let scope = scope.unwrap_or_else(|| req.scope.clone());
                let token = self
                    .fetch_token(&realm, service.as_deref(), &scope, &req.what)
                    .await?;
                self.inner
                    .auth
                    .lock()
                    .expect("auth lock")
                    .insert(req.scope.clone(), token);
                Ok(())
            }
            None => Err(unauthorized(
                "the registry sent no usable WWW-Authenticate challenge",
            )),
        }
    }

    /// Turns an unexpected response into an error, reading at most 8 KiB of its body.
    pub(super) async fn unexpected(&self, response: Response, what: String) -> RegistryError {
        let status = response.status();
        let body = read_error_body(response, 8 * 1024).await;
        let codes = error_codes(&body);
        if status == StatusCode::NOT_FOUND {
            return RegistryError::NotFound {
                what,
                code: codes.first().cloned().unwrap_or_else(|| "404".into()),
            };
        }
        let message = if codes.is_empty() {
            crate::text::shorten(String::from_utf8_lossy(&body).trim())
        } else {
            codes.join(", ")
        };
        RegistryError::Status {
            registry: self.inner.config.registry.clone(),
            what,
            status: status.as_u16(),
            message,
            codes,
        }
    }
}

/// The `errors[].code` values of a distribution error body.
pub(super) fn error_codes(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: String,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.errors.into_iter().map(|e| e.code).collect())
        .unwrap_or_default()
}

/// Reads a response body of at most `limit` bytes, for error messages: whatever fails to
/// arrive is left out.
pub(super) async fn read_error_body(mut response: Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    out
}

impl Client {
    /// Sends an idempotent GET and reads its body (at most `limit` bytes). A connection
    /// that breaks mid-body is retried like any other transient failure.
    pub(super) async fn fetch(
        &self,
        req: Request,
        limit: u64,
    ) -> Result<(HeaderMap, Bytes), RegistryError> {
        let mut attempt = 1;
        loop {
            let response = self.send(req.clone()).await?;
            if !response.status().is_success() {
                return Err(self.unexpected(response, req.what).await);
            }
            let headers = response.headers().clone();
            match self.read_body(response, limit, &req.what).await {
                Ok(bytes) => return Ok((headers, bytes)),
                Err(RegistryError::Interrupted { source, .. })
                    if attempt < self.inner.config.max_attempts =>
                {
                    tracing::warn!(what = %req.what, attempt, error = %source, "connection broke mid-body; retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads a response body, refusing more than `limit` bytes. A body cut off mid-way is
    /// an error, never a short result.
    pub(super) async fn read_body(
        &self,
        mut response: Response,
        limit: u64,
        what: &str,
    ) -> Result<Bytes, RegistryError> {
        let too_large = || RegistryError::TooLarge {
            what: what.to_string(),
            limit,
        };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if (out.len() + chunk.len()) as u64 > limit {
                        return Err(too_large());
                    }
                    out.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(Bytes::from(out)),
                Err(e) => {
                    return Err(RegistryError::Interrupted {
                        registry: self.registry().to_string(),
                        what: what.to_string(),
                        source: Arc::new(e.without_url()),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::RETRY_AFTER;

    #[test]
    fn reads_error_codes_and_retry_after() {
        let body = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}"#;
        assert_eq!(error_codes(body), vec!["NAME_UNKNOWN"]);
        assert!(error_codes(b"404 page not found").is_empty());
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
    }
}
