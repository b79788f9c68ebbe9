//! Errors as RFC 9457 `application/problem+json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::catalog::platforms::ResolveError;
use crate::catalog::CatalogError;
use crate::registry::RegistryError;

/// An error answer.
#[derive(Clone, Debug)]
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
    retry_after: Option<u64>,
    /// `WWW-Authenticate` of a 401.
    challenge: Option<&'static str>,
}

/// The challenge of a catalog that passes its callers' credentials to the registry: a
/// browser asks for the registry user name and password (or token).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"refcat\", charset=\"UTF-8\"";
/// The challenge of a catalog that takes static bearer tokens.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"refcat\"";

impl Problem {
    /// 400: a bad name or parameter.
    pub fn bad_request(detail: impl ToString) -> Self {
        Problem {
            status: StatusCode::BAD_REQUEST,
            title: "Bad request",
            detail: detail.to_string(),
            retry_after: None,
            challenge: None,
        }
    }

    /// 503 with `Retry-After`: the registry cannot be read now.
    pub fn unavailable(detail: impl ToString, retry_after: u64) -> Self {
        Problem {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Registry unavailable",
            detail: detail.to_string(),
            retry_after: Some(retry_after),
            challenge: None,
        }
    }

    /// 401 with `challenge` in `WWW-Authenticate`.
    pub fn unauthorized(detail: impl ToString, challenge: &'static str) -> Self {
        Problem {
            status: StatusCode::UNAUTHORIZED,
            title: "Unauthorized",
            detail: detail.to_string(),
            retry_after: None,
            challenge: Some(challenge),
        }
    }

    /// The `WWW-Authenticate` value of a 401.
    pub fn challenge(&self) -> Option<&'static str> {
        self.challenge
    }

    /// Its status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Its short title.
    pub fn title(&self) -> &'static str {
        self.title
    }

    /// What went wrong, and what to do.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Seconds to wait before asking again, for a 503.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// 404: no such route, repository, tag or digest.
    pub fn not_found(detail: impl ToString) -> Self {
        Problem {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            detail: detail.to_string(),
            retry_after: None,
            challenge: None,
        }
    }
}

impl From<CatalogError> for Problem {
    fn from(err: CatalogError) -> Self {
        let registry = match &err {
            CatalogError::Registry(e)
            | CatalogError::Resolve(ResolveError::Registry(e))
            | CatalogError::NoCatalog(e @ RegistryError::Unauthorized { .. }) => Some(e),
            _ => None,
        };
        // A caller's own credentials were refused: theirs to change.
        match registry {
            Some(RegistryError::Unauthorized { caller: true, .. }) => {
                return Problem::unauthorized(
                    "the registry did not accept your credentials, or wants some: sign in with your registry user name and password or token",
                    BASIC_CHALLENGE,
                )
            }
            Some(RegistryError::Forbidden { caller: true, .. }) => {
                return Problem {
                    status: StatusCode::FORBIDDEN,
                    title: "Forbidden",
                    detail: "your registry credentials do not allow reading this".into(),
                    retry_after: None,
                    challenge: None,
                }
            }
            _ => {}
        }
        match err {
            CatalogError::Query(detail) => return Problem::bad_request(detail),
            CatalogError::NotFound(detail) => return Problem::not_found(detail),
            CatalogError::NoCatalog(_) if registry.is_none() => {
                tracing::error!(error = %err, "the catalog cannot list the registry's repositories");
                return Problem::unavailable(
                    "the registry does not let the catalog list its repositories: its operator must name them (refcat serve --repository)",
                    30,
                );
            }
            _ => {}
        }
        // refcat's own credentials were refused: the operator's problem, not the
        // caller's, and nothing about the registry is theirs to learn.
        if let Some(
            RegistryError::Unauthorized { .. }
            | RegistryError::Forbidden { .. }
            | RegistryError::Certificate { .. },
        ) = registry
        {
            tracing::error!(error = %err, "the registry refused refcat's credentials or its certificate is not trusted");
            return Problem::unavailable("the catalog cannot read the registry right now", 30);
        }
        let (status, title, retry_after) = match (registry, &err) {
            (Some(RegistryError::NotFound { .. }), _) => (StatusCode::NOT_FOUND, "Not found", None),
            (_, CatalogError::Resolve(ResolveError::NoPlatform { .. })) => {
                (StatusCode::NOT_FOUND, "Not found", None)
            }
            (_, CatalogError::Resolve(ResolveError::NotAnImage { .. })) => {
                (StatusCode::NOT_FOUND, "Not a container image", None)
            }
            (
                Some(
                    RegistryError::Unavailable { .. }
                    | RegistryError::Timeout { .. }
                    | RegistryError::Connect { .. }
                    | RegistryError::Interrupted { .. },
                ),
                _,
            ) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Registry unavailable",
                Some(5),
            ),
            _ => (StatusCode::BAD_GATEWAY, "Registry error", None),
        };
        Problem {
            status,
            title,
            detail: err.to_string(),
            retry_after,
            challenge: None,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
