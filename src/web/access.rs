//! Who may read the catalog. Open (the default, for loopback), static bearer tokens
//! for a read-only service account (`--auth token`), or each caller's own registry
//! credentials passed through (`--auth pass-through`): then every view is read with
//! them, so a caller sees exactly the repositories and tags they could pull.
//!
//! Health, readiness, metrics, the OpenAPI document, Swagger UI and page assets hold
//! nothing of the registry's and stay open.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::problem::{BASIC_CHALLENGE, BEARER_CHALLENGE};
use super::{AppState, Problem, Shared};
use crate::catalog::CatalogError;
use crate::registry::{Credentials, RegistryError, Secret};

/// How callers are let in.
#[derive(Clone, Debug, Default)]
pub enum Access {
    /// Anyone who reaches the server; views read with refcat's own credentials.
    #[default]
    Open,
    /// Callers presenting one of these bearer tokens; views read with refcat's own
    /// credentials.
    Tokens(Arc<TokenSet>),
    /// Each caller's `Authorization` goes to the registry; views read with it.
    PassThrough(Arc<PassThrough>),
}

/// The bearer tokens `--auth token` accepts, kept as their SHA-256 (`Debug` shows only
/// how many).
pub struct TokenSet {
    hashes: HashSet<[u8; 32]>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("tokens", &self.hashes.len())
            .finish()
    }
}

/// A plain token shorter than this is refused: it could be guessed.
const MIN_TOKEN_CHARS: usize = 16;

impl TokenSet {
    /// Reads a token file: one token a line, or `sha256:<hex>` of one so the file need
    /// not hold it; blank lines and `#` comments are skipped. Errors name the line.
    pub fn parse(text: &str, source: &str) -> Result<TokenSet, String> {
        let mut hashes = HashSet::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |why: &str| format!("{source}:{}: {why}", n + 1);
            let hash = match line.strip_prefix("sha256:") {
                Some(hex) => decode_hash(hex).ok_or_else(|| at("sha256: needs 64 hex digits"))?,
                None if line.chars().count() < MIN_TOKEN_CHARS => {
                    return Err(at("a token must be at least 16 characters"))
                }
                None => Sha256::digest(line.as_bytes()).into(),
            };
            hashes.insert(hash);
        }
        if hashes.is_empty() {
            return Err(format!("{source} holds no token"));
        }
        Ok(TokenSet { hashes })
    }

    fn accepts(&self, token: &str) -> bool {
        self.hashes
            .contains(&<[u8; 32]>::from(Sha256::digest(token.as_bytes())))
    }
}

fn decode_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The per-caller states of `--auth pass-through`. A state is made only for credentials
/// the registry accepted (a `GET /v2/` with them), so made-up ones cost a registry ping,
/// not memory or a catalog walk; what callers read is kept in the server's caches, under
/// keys of their own, within `--cache-mib`.
pub struct PassThrough {
    /// By the SHA-256 of the caller's `Authorization` (empty for anonymous callers).
    states: moka::future::Cache<[u8; 32], Shared>,
    /// What the registry answered credentials it refused lately, by the same hash (never
    /// the credentials): they are not sent again for a while.
    refused: moka::sync::Cache<[u8; 32], Problem>,
}

impl std::fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassThrough")
            .field("callers", &self.states.entry_count())
            .field("refused", &self.refused.entry_count())
            .finish()
    }
}

/// Callers remembered at once, and for how long after their last request.
const CALLERS: u64 = 1_000;
const CALLER_IDLE: Duration = Duration::from_secs(600);
/// Refused credentials remembered at once, and for how long.
const REFUSED: u64 = 10_000;
const REFUSED_FOR: Duration = Duration::from_secs(30);

impl Default for PassThrough {
    fn default() -> Self {
        PassThrough {
            states: moka::future::Cache::builder()
                .max_capacity(CALLERS)
                .time_to_idle(CALLER_IDLE)
                .build(),
            refused: moka::sync::Cache::builder()
                .max_capacity(REFUSED)
                .time_to_live(REFUSED_FOR)
                .build(),
        }
    }
}

impl PassThrough {
    /// The state `authorization`'s caller is served from: a client reading with their
    /// credentials, and views cached under their own keys. Made once the registry
    /// accepted the credentials; concurrent first requests share that one check.
    async fn state_for(
        &self,
        base: &AppState,
        authorization: Option<&str>,
    ) -> Result<Shared, Problem> {
        let key: [u8; 32] = Sha256::digest(authorization.unwrap_or_default().as_bytes()).into();
        if let Some(state) = self.states.get(&key).await {
            return Ok(state);
        }
        if let Some(refusal) = self.refused.get(&key) {
            return Err(refusal);
        }
        let credentials = caller_credentials(authorization)?;
        let scope: String = key[..16].iter().map(|b| format!("{b:02x}")).collect();
        let admit = async {
            let client = base.client.for_caller(credentials, &scope);
            client.ping().await?;
            Ok::<_, RegistryError>(Shared::new(AppState {
                client,
                cache: base.cache.scoped(&scope),
                access: Access::Open,
                ..base.clone()
            }))
        };
        match self.states.try_get_with(key, Box::pin(admit)).await {
            Ok(state) => Ok(state),
            Err(e) => {
                let problem = Problem::from(CatalogError::from(e.as_ref().clone()));
                if e.refused_a_caller() {
                    self.refused.insert(key, problem.clone());
                }
                Err(problem)
            }
        }
    }
}

/// The registry credentials in a caller's `Authorization`, as `docker login` would send
/// them: Basic, or a bearer token the registry takes.
fn caller_credentials(authorization: Option<&str>) -> Result<Credentials, Problem> {
    let Some(value) = authorization else {
        return Ok(Credentials::Anonymous);
    };
    let refused = |why: &str| Problem::unauthorized(why, BASIC_CHALLENGE);
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .ok_or_else(|| refused("malformed Basic credentials"))?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| refused("malformed Basic credentials: no ':'"))?;
            Ok(Credentials::Basic {
                username: username.to_string(),
                password: Secret::new(password),
            })
        }
        "bearer" if !rest.trim().is_empty() => Ok(Credentials::Bearer(Secret::new(rest.trim()))),
        _ => Err(refused(
            "send registry credentials as Basic (user name and password or token) or a Bearer token",
        )),
    }
}

/// The token of a `Bearer` authorization, the scheme in any case (RFC 9110 §11.1).
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Paths that hold nothing of the registry's.
fn open_path(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/metrics" | "/v1/openapi.json"
    ) || path.starts_with("/v1/docs")
        || path.starts_with("/assets/")
}

/// The state a request is served from, as [`guard`] chose it.
#[derive(Clone)]
struct CallerState(Shared);

/// Lets a request in, or answers 401 with a challenge (as `page` renders it for a
/// browser); under pass-through, picks the caller's state. Views behind credentials are
/// marked private to shared HTTP caches.
pub(crate) async fn guard(
    State(state): State<Shared>,
    mut request: Request,
    next: Next,
    page: fn(&Problem) -> Response,
) -> Response {
    if open_path(request.uri().path()) {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match &state.access {
        // The router lays no guard over an open catalog; should one be, it lets through.
        Access::Open => return next.run(request).await,
        Access::Tokens(tokens) => {
            let token = authorization.as_deref().and_then(bearer_token);
            if !token.is_some_and(|t| tokens.accepts(t)) {
                return respond_refused(
                    request.headers(),
                    page,
                    Problem::unauthorized(
                        "this catalog needs a token: send Authorization: Bearer <token>",
                        BEARER_CHALLENGE,
                    ),
                );
            }
        }
        Access::PassThrough(callers) => {
            match callers.state_for(&state, authorization.as_deref()).await {
                Ok(caller) => {
                    request.extensions_mut().insert(CallerState(caller));
                }
                Err(problem) => return respond_refused(request.headers(), page, problem),
            }
        }
    }
    let mut response = next.run(request).await;
    private(response.headers_mut());
    response
}

/// A refusal, as a page for a browser and problem+json for anyone else: which one
/// depends on `Accept`, so a shared cache must key it by that too.
fn respond_refused(
    request: &HeaderMap,
    page: fn(&Problem) -> Response,
    problem: Problem,
) -> Response {
    let html = request
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let mut response = match html {
        true => page(&problem),
        false => problem.into_response(),
    };
    let headers = response.headers_mut();
    private(headers);
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Authorization, Accept"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// What depends on the caller's credentials must not be served from a shared cache to
/// someone else.
fn private(headers: &mut HeaderMap) {
    headers.insert(header::VARY, HeaderValue::from_static("Authorization"));
    let public = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.replace("public", "private"));
    if let Some(value) = public.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(header::CACHE_CONTROL, value);
    }
}

/// The state a handler serves from: the caller's under pass-through, else the server's.
pub(crate) struct Viewer(pub Shared);

impl FromRequestParts<Shared> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        Ok(Viewer(match parts.extensions.get::<CallerState>() {
            Some(CallerState(caller)) => caller.clone(),
            None => state.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_take_tokens_or_their_hashes() {
        let plain = "a-long-enough-token-1";
        let hashed: String = Sha256::digest(b"another-long-token-2")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let set = TokenSet::parse(&format!("# tokens\n{plain}\n\nsha256:{hashed}\n"), "t").unwrap();
        assert!(set.accepts(plain));
        assert!(set.accepts("another-long-token-2"));
        assert!(!set.accepts("a-long-enough-token-"));
        assert!(TokenSet::parse("short\n", "t")
            .unwrap_err()
            .starts_with("t:1:"));
        assert!(TokenSet::parse("sha256:abc\n", "t").is_err());
        assert!(TokenSet::parse("# none\n", "t").is_err());
        assert_eq!(format!("{set:?}"), "TokenSet { tokens: 2 }");
    }

    #[test]
    fn callers_send_basic_or_bearer() {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:pa55")
        );
        assert_eq!(
            caller_credentials(Some(&basic)).unwrap(),
            Credentials::Basic {
                username: "alice".into(),
                password: Secret::new("pa55")
            }
        );
        assert_eq!(
            caller_credentials(Some("Bearer tok")).unwrap(),
            Credentials::Bearer(Secret::new("tok"))
        );
        assert_eq!(caller_credentials(None).unwrap(), Credentials::Anonymous);
        for bad in ["Basic !!!", "Negotiate x", "Bearer ", "Basic YWxpY2U="] {
            let refused = caller_credentials(Some(bad)).unwrap_err();
            assert_eq!(refused.status(), 401, "{bad}");
            assert!(refused.challenge().is_some());
        }
    }
}
