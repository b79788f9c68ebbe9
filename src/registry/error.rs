//! Errors from talking to a registry. None of them carries a credential: URLs are
//! built without userinfo and response bodies are cut to the registry's error codes.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::digest::DigestError;

/// What went wrong talking to a registry. Cloneable, so that requests coalesced by a
/// cache can each receive the one failure.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused the credentials, or demanded some that were not given.
    #[error("{registry} answered 401 Unauthorized for {what}: {hint}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// The request, as `GET manifest fixtures/app:1`.
        what: String,
        /// What to do about it.
        hint: &'static str,
        /// The credentials were a catalog caller's, not refcat's own.
        caller: bool,
    },
    /// The credentials were accepted but do not allow this action.
    #[error("{registry} answered 403 Forbidden for {what}: the credentials lack permission for this repository")]
    Forbidden {
        /// Registry host.
        registry: String,
        /// The request.
        what: String,
        /// The credentials were a catalog caller's, not refcat's own.
        caller: bool,
    },
    /// The repository, tag, manifest or blob does not exist.
    #[error("not found: {what} ({code})")]
    NotFound {
        /// The request.
        what: String,
        /// The registry's error code, e.g. `MANIFEST_UNKNOWN`.
        code: String,
    },
    /// The registry kept failing (429/5xx) after every retry.
    #[error("{registry} kept failing for {what}: HTTP {status} after {attempts} attempts{retry_after}; try again later", retry_after = .retry_after.map(|d| format!(" (it asked to wait {}s)", d.as_secs())).unwrap_or_default())]
    Unavailable {
        /// Registry host.
        registry: String,
        /// The request.
        what: String,
        /// The last status.
        status: u16,
        /// How many attempts were made.
        attempts: u32,
        /// The last `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Any other unexpected status.
    #[error("{registry} answered HTTP {status} for {what}: {message}")]
    Status {
        /// Registry host.
        registry: String,
        /// The request.
        what: String,
        /// HTTP status.
        status: u16,
        /// Error codes and messages from the body, shortened.
        message: String,
        /// The error codes of the body, e.g. `MANIFEST_BLOB_UNKNOWN`.
        codes: Vec<String>,
    },
    /// No answer within the timeout, after every retry.
    #[error("{registry} did not answer {what} within {timeout:?} ({attempts} attempts)")]
    Timeout {
        /// Registry host.
        registry: String,
        /// The request.
        what: String,
        /// The per-request timeout.
        timeout: Duration,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The connection failed.
    #[error("cannot reach {registry} for {what}: {source}")]
    Connect {
        /// Registry host.
        registry: String,
        /// The request.
        what: String,
        /// The transport error (reqwest strips userinfo from URLs it prints).
        source: Arc<reqwest::Error>,
    },
    /// The registry speaks TLS with a certificate refcat does not trust.
    #[error("the TLS certificate of {registry} is not trusted ({reason}) for {what}: pass --ca-file with the CA that signed it (or --insecure to skip the check)")]
    Certificate {
        /// Registry host.
        registry: String,
        /// The request.
        what: String,
        /// What rustls said of the certificate.
        reason: String,
    },
    /// The connection broke after the response began: the body arrived only in part.
    #[error("the connection to {registry} broke while reading {what}: {source}; try again")]
    Interrupted {
        /// Registry host.
        registry: String,
        /// The request.
        what: String,
        /// The transport error.
        source: Arc<reqwest::Error>,
    },
    /// Content larger than the configured limit.
    #[error(
        "{what} is larger than the limit of {limit} bytes; raise the limit if this is expected"
    )]
    TooLarge {
        /// The request.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// Content that does not match its digest, or a malformed digest header.
    #[error("{what}: {source}")]
    Digest {
        /// The request.
        what: String,
        /// The digest problem.
        source: DigestError,
    },
    /// A document the registry served is not what the spec says it must be.
    #[error("{what}: invalid response: {reason}")]
    InvalidResponse {
        /// The request.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// Reading docker credentials failed.
    #[error("cannot read registry credentials: {0}")]
    Credentials(String),
    /// The lock of a read-modify-write was lost before its write, which was not made.
    #[error(transparent)]
    LockLost(crate::locks::LockLost),
}

impl RegistryError {
    /// Whether this error means the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }

    /// Whether the request may have failed only on the way: a timeout, a broken
    /// connection, or a 429/5xx after retries. Such a write may have taken effect.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RegistryError::Timeout { .. }
                | RegistryError::Connect { .. }
                | RegistryError::Interrupted { .. }
                | RegistryError::Unavailable { .. }
        )
    }

    /// Whether the registry does not allow this operation at all (405, as a registry
    /// with deletes switched off answers a DELETE).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, RegistryError::Status { status: 405, .. })
    }

    /// Whether a catalog caller's own credentials were refused (or are lacking).
    pub fn refused_a_caller(&self) -> bool {
        matches!(
            self,
            RegistryError::Unauthorized { caller: true, .. }
                | RegistryError::Forbidden { caller: true, .. }
        )
    }

    /// Whether the registry's error body carried `code`.
    pub fn has_code(&self, code: &str) -> bool {
        matches!(self, RegistryError::Status { codes, .. } if codes.iter().any(|c| c == code))
    }
}

/// Whether a status is worth retrying: the registry is busy or failing for now.
pub(super) fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// The wait a `Retry-After` header asks for, in seconds.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
