//! The distribution auth flow: answer a 401's `WWW-Authenticate` challenge with Basic
//! credentials or with a bearer token fetched from the challenge's realm.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use serde::Deserialize;

use super::client::Client;
use super::counter::RequestKind;
use super::credentials::{Credentials, Secret};
use super::error::{is_transient, retry_after, RegistryError};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=…`
    Basic,
    /// `Bearer realm=…,service=…,scope=…`
    Bearer {
        /// Token endpoint.
        realm: String,
        /// The `service` parameter to pass back.
        service: Option<String>,
        /// The `scope` the registry asked for.
        scope: Option<String>,
        /// Why a token was refused (RFC 6750): `insufficient_scope` when it is valid but
        /// does not grant the request.
        error: Option<String>,
    },
}

impl Challenge {
    /// Parses the header value; `None` for schemes refcat does not speak.
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        let params = parse_params(params);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
                error: params.get("error").cloned(),
            }),
            _ => None,
        }
    }

    /// Whether the registry took the token but it does not grant the request: the
    /// credentials behind it may not do this.
    pub fn lacks_scope(&self) -> bool {
        matches!(self, Challenge::Bearer { error: Some(e), .. } if e == "insufficient_scope")
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_string());
        rest = remainder.trim_start_matches(',').trim();
    }
    out
}

/// The value of an `Authorization: Basic` header for these credentials, if they have a password.
pub fn basic_header(credentials: &Credentials) -> Option<Secret> {
    match credentials {
        Credentials::Basic { username, password } => {
            let raw = format!("{username}:{}", password.expose());
            Some(Secret::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )))
        }
        _ => None,
    }
}

/// A token endpoint's answer; registries use either field name.
#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

impl TokenResponse {
    fn into_bearer(self) -> Option<Secret> {
        self.token
            .or(self.access_token)
            .filter(|t| !t.is_empty())
            .map(|t| Secret::new(format!("Bearer {t}")))
    }
}

/// Token responses are a few KiB; anything bigger is not one.
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// Docker Hub's token service, trusted for Docker Hub's own hosts as it names it.
const DOCKER_HUB_REALM: &str = "auth.docker.io";

/// Whether the token service at `realm` may be asked (and sent the credentials) by a
/// registry reached over `registry_scheme` at `registry_host`: never over plain HTTP
/// when the registry speaks HTTPS; only on the registry's own host and port, Docker
/// Hub's for Docker Hub, or one the user trusts (`HOST` or `HOST:PORT`, the scheme's
/// default port where none is named). Another port of the same host is another service.
fn realm_policy(
    realm: &url::Url,
    registry_scheme: &str,
    registry_host: &str,
    trusted: &[String],
) -> Result<bool, String> {
    match (realm.scheme(), registry_scheme) {
        ("https", _) | ("http", "http") => {}
        ("http", _) => {
            return Err(format!(
                "the bearer realm {realm} would downgrade to plain HTTP; refused"
            ))
        }
        (other, _) => return Err(format!("the bearer realm uses {other}, not HTTPS; refused")),
    }
    let at = (realm.host_str(), realm.port_or_known_default());
    let is_realm = |scheme: &str, authority: &str| {
        url::Url::parse(&format!("{scheme}://{authority}/"))
            .is_ok_and(|u| (u.host_str(), u.port_or_known_default()) == at)
    };
    let registry_name = url::Url::parse(&format!("{registry_scheme}://{registry_host}/"))
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let docker_hub = registry_name == "docker.io" || registry_name.ends_with(".docker.io");
    Ok(is_realm(registry_scheme, registry_host)
        || (docker_hub && is_realm("https", DOCKER_HUB_REALM))
        || trusted.iter().any(|t| is_realm(realm.scheme(), t)))
}

impl Client {
    /// A bearer token for `scope` from the token service at `realm`, as the distribution
    /// token spec describes: a GET with Basic credentials, or an OAuth2 POST for a
    /// refresh (identity) token, which never goes in a URL.
    pub(super) async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        what: &str,
    ) -> Result<Secret, RegistryError> {
        let config = &self.inner.config;
        let invalid = |reason: String| RegistryError::InvalidResponse {
            what: format!("token for {what}"),
            reason,
        };
        let mut url = url::Url::parse(realm)
            .map_err(|e| invalid(format!("bearer realm is not a URL: {e}")))?;
        let token_what = format!(
            "token from {}:{} for {what}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default()
        );
        let scheme = if self.plain_http() { "http" } else { "https" };
        let trusted = realm_policy(&url, scheme, &config.registry, &config.trusted_realms)
            .map_err(invalid)?;
        // A realm elsewhere is not asked at all, not even anonymously: a registry must not
        // be able to make refcat send requests wherever it likes.
        if !trusted {
            return Err(RegistryError::Unauthorized {
                registry: config.registry.clone(),
                what: token_what,
                hint: "the registry's token service is on another host or port, so refcat did not ask it: if it is the registry's own, pass --trusted-realm with its host and port",
                // The operator's to fix, whoever's credentials they were.
                caller: false,
            });
        }
        let credentials = &config.credentials;
        let refresh = matches!(credentials, Credentials::IdentityToken(_));
        if !refresh {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            // Several scopes (a cross-repository mount's) go as one `scope` each, as
            // the token spec has them; the OAuth2 form below takes them space-separated.
            for scope in scope.split(' ') {
                query.append_pair("scope", scope);
            }
            if let Credentials::Basic { username, .. } = credentials {
                query.append_pair("account", username);
            }
        }
        let request = || match credentials {
            Credentials::IdentityToken(token) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.expose()),
                    ("client_id", "refcat"),
                    ("scope", scope),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                self.inner.http.post(url.clone()).form(&form)
            }
            _ => {
                let builder = self.inner.http.get(url.clone());
                match basic_header(credentials) {
                    Some(basic) => builder.header(AUTHORIZATION, basic.expose()),
                    None => builder,
                }
            }
        };
        let method = if refresh { Method::POST } else { Method::GET };
        // A token service that is busy or failing is waited for like the registry: its
        // failure says nothing about the credentials.
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.inner.counter.record(&method, RequestKind::Token);
            match self.token_answer(request(), &token_what, attempt).await {
                Err(e) if e.is_transient() && attempt < config.max_attempts => {
                    let wait = match &e {
                        RegistryError::Unavailable {
                            retry_after: Some(wait),
                            ..
                        } => *wait,
                        _ => self.backoff(attempt),
                    };
                    tracing::warn!(what = %token_what, attempt, error = %e, "the token service is busy or failing; retrying");
                    tokio::time::sleep(wait.min(config.max_backoff)).await;
                }
                answer => return answer,
            }
        }
    }

    /// One request to a token service, `attempt` of those for one token: the token, or
    /// why there is none.
    async fn token_answer(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
        attempt: u32,
    ) -> Result<Secret, RegistryError> {
        let config = &self.inner.config;
        let response = tokio::time::timeout(config.request_timeout, request.send())
            .await
            .map_err(|_| RegistryError::Timeout {
                registry: config.registry.clone(),
                what: what.to_string(),
                timeout: config.request_timeout,
                attempts: attempt,
            })?
            .map_err(|e| RegistryError::Connect {
                registry: config.registry.clone(),
                what: what.to_string(),
                source: Arc::new(e.without_url()),
            })?;
        let status = response.status();
        if is_transient(status) {
            return Err(RegistryError::Unavailable {
                registry: config.registry.clone(),
                what: what.to_string(),
                status: status.as_u16(),
                attempts: attempt,
                retry_after: retry_after(response.headers()),
            });
        }
        if !status.is_success() {
            return Err(RegistryError::Unauthorized {
                registry: config.registry.clone(),
                what: what.to_string(),
                hint: "the token service refused the credentials",
                caller: config.for_caller,
            });
        }
        let body = self.read_body(response, MAX_TOKEN_BYTES, what).await?;
        let invalid = |reason: String| RegistryError::InvalidResponse {
            what: what.to_string(),
            reason,
        };
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("token response is not JSON: {e}")))?;
        parsed
            .into_bearer()
            .ok_or_else(|| invalid("token response has no token".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
                error: None,
            })
        );
        let refused = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull",error="insufficient_scope""#,
        )
        .unwrap();
        assert!(refused.lacks_scope());
        assert!(
            !Challenge::parse(r#"Bearer realm="r",error="invalid_token""#)
                .unwrap()
                .lacks_scope()
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="zot""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate abc"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }

    #[test]
    fn basic_header_is_redacted_in_debug() {
        let creds = Credentials::Basic {
            username: "u".into(),
            password: Secret::new("p"),
        };
        let header = basic_header(&creds).unwrap();
        assert_eq!(header.expose(), "Basic dTpw");
        assert!(!format!("{header:?}").contains("dTpw"));
    }

    #[test]
    fn credentials_go_only_to_the_registrys_host_and_port_and_never_down_to_http() {
        let realm = |u: &str| url::Url::parse(u).unwrap();
        let policy = |r: &str, scheme: &str, registry: &str, trusted: &[&str]| {
            let trusted: Vec<String> = trusted.iter().map(|t| t.to_string()).collect();
            realm_policy(&realm(r), scheme, registry, &trusted)
        };
        let own = "registry.example:5000";
        assert_eq!(
            policy("https://registry.example:5000/token", "https", own, &[]),
            Ok(true)
        );
        // The same host on another port is another service.
        assert_eq!(
            policy("https://registry.example/token", "https", own, &[]),
            Ok(false)
        );
        assert_eq!(
            policy("https://registry.example:5001/token", "https", own, &[]),
            Ok(false)
        );
        // Default ports on either side.
        assert_eq!(
            policy(
                "https://registry.example:443/t",
                "https",
                "registry.example",
                &[]
            ),
            Ok(true)
        );
        assert_eq!(
            policy(
                "http://registry.example/t",
                "http",
                "registry.example:80",
                &[]
            ),
            Ok(true)
        );
        assert_eq!(
            policy("https://auth.example/token", "https", own, &[]),
            Ok(false)
        );
        assert_eq!(
            policy(
                "https://auth.example/token",
                "https",
                own,
                &["auth.example"]
            ),
            Ok(true)
        );
        assert_eq!(
            policy(
                "https://auth.example:8443/t",
                "https",
                own,
                &["auth.example"]
            ),
            Ok(false)
        );
        assert_eq!(
            policy(
                "https://auth.example:8443/t",
                "https",
                own,
                &["AUTH.example:8443"]
            ),
            Ok(true)
        );
        assert_eq!(
            policy("http://[::1]:5001/t", "http", "[::1]:5000", &["[::1]:5001"]),
            Ok(true)
        );
        assert!(policy("http://registry.example:5000/token", "https", own, &[]).is_err());
        assert!(policy("ftp://registry.example:5000/token", "https", own, &[]).is_err());
        assert_eq!(
            policy("http://registry.example:5000/token", "http", own, &[]),
            Ok(true)
        );
        // Docker Hub's own token service, for Docker Hub only.
        let hub = "https://auth.docker.io/token";
        assert_eq!(policy(hub, "https", "docker.io", &[]), Ok(true));
        assert_eq!(policy(hub, "https", "registry-1.docker.io", &[]), Ok(true));
        assert_eq!(policy(hub, "https", "notdocker.io", &[]), Ok(false));
        assert_eq!(policy(hub, "https", own, &[]), Ok(false));
    }
}
