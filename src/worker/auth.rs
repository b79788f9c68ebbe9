//! Webhook authentication with a shared secret: `Authorization: Bearer <secret>` (what
//! distribution's notification `headers` and zot's sink can send; Harbor's static auth
//! header may carry the bare secret) or an HMAC-SHA256 of
//! the body in `X-Refcat-Signature: sha256=<hex>` (GitHub's `X-Hub-Signature-256` is
//! read too). Comparisons take constant time.

use hmac::{Mac, SimpleHmac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// The header carrying an HMAC of the body.
pub const SIGNATURE_HEADER: &str = "x-refcat-signature";
const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Why a webhook was not authenticated. Never carries the secret or what was sent.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Neither a bearer token nor a signature was sent.
    #[error("no credentials: send `Authorization: Bearer <secret>` or `{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the body>`")]
    Missing,
    /// A token or signature was sent and is wrong.
    #[error("the webhook credentials do not match the worker's secret")]
    Wrong,
}

/// The shared secret webhooks must prove they know (redacted in `Debug`).
#[derive(Clone, Debug)]
pub struct WebhookSecret(Secret);

impl WebhookSecret {
    /// Wraps `secret`.
    pub fn new(secret: Secret) -> Self {
        WebhookSecret(secret)
    }

    /// Checks a request's headers (by lowercase name) and body.
    pub fn check<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
    ) -> Result<(), AuthError> {
        let secret = self.0.expose().as_bytes();
        let authorization = header("authorization");
        if let Some(value) = authorization {
            // Harbor sends its policy's "auth header" as it is: the bare secret is taken
            // as well as `Bearer <secret>`.
            let token = value.strip_prefix("Bearer ").unwrap_or(value);
            if bool::from(token.trim().as_bytes().ct_eq(secret)) {
                return Ok(());
            }
        }
        let signature = header(SIGNATURE_HEADER).or_else(|| header(GITHUB_SIGNATURE_HEADER));
        let Some(signature) = signature.and_then(|s| s.trim().strip_prefix("sha256=")) else {
            return Err(match authorization {
                Some(_) => AuthError::Wrong,
                None => AuthError::Missing,
            });
        };
        let Some(sent) = decode_hex(signature) else {
            return Err(AuthError::Wrong);
        };
        let mut mac = SimpleHmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(body);
        mac.verify_slice(&sent).map_err(|_| AuthError::Wrong)
    }
}

/// The HMAC-SHA256 of `body` under `secret`, hex: what a sender puts after `sha256=`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = SimpleHmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_hmac_are_accepted_and_everything_else_refused() {
        let secret = WebhookSecret::new(Secret::new("s3cret"));
        let body = b"{\"events\":[]}";
        let check = |name: &str, value: String| {
            let headers = std::collections::HashMap::from([(name.to_string(), value)]);
            secret.check(|h| headers.get(h).map(String::as_str), body)
        };
        assert_eq!(check("authorization", "Bearer s3cret".into()), Ok(()));
        assert_eq!(check("authorization", "s3cret".into()), Ok(()));
        assert_eq!(
            check("authorization", "Basic s3cret".into()),
            Err(AuthError::Wrong)
        );
        assert_eq!(
            check("authorization", "Bearer s3cre".into()),
            Err(AuthError::Wrong)
        );
        let good = format!("sha256={}", sign("s3cret", body));
        assert_eq!(check(SIGNATURE_HEADER, good.clone()), Ok(()));
        assert_eq!(check(GITHUB_SIGNATURE_HEADER, good), Ok(()));
        let other = format!("sha256={}", sign("other", body));
        assert_eq!(check(SIGNATURE_HEADER, other), Err(AuthError::Wrong));
        assert_eq!(
            check(SIGNATURE_HEADER, "sha256=zz".into()),
            Err(AuthError::Wrong)
        );
        assert_eq!(check("x-other", "x".into()), Err(AuthError::Missing));
        assert!(!format!("{secret:?}").contains("s3cret"));
    }
}
