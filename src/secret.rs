//! Secrets (registry passwords, tokens, key passwords) whose `Debug` and `Display` never
//! show them.

use std::fmt;

/// A secret string whose `Debug` and `Display` are redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for an Authorization header or a key derivation and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Parses from a command-line value or environment variable, so that arguments that
/// hold secrets are redacted in `Debug` too.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(value))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
