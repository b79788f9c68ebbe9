//! cosign-compatible signing and verification of the artifacts refcat writes.
//!
//! Every artifact manifest is signed by its own digest, with an ECDSA P-256 key in
//! cosign's key file format ([`keys`]), in one of two layouts `cosign verify` reads:
//! a Sigstore bundle v0.3 referrer, cosign v3's default ([`bundle`]), or the legacy
//! `sha256-<hex>.sig` simple-signing tag ([`legacy`]).

pub mod bundle;
pub mod dsse;
pub mod keys;
pub mod legacy;

pub use keys::{KeyPair, PublicKey};

/// What went wrong loading a key or checking a signature. Never carries a password.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key file could not be decrypted with the given password.
    #[error(
        "the key password is wrong (set COSIGN_PASSWORD to the password the key was made with)"
    )]
    WrongPassword,
    /// The key file is not a cosign key.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A signature or signed document that does not hold.
    #[error("signature rejected: {0}")]
    BadSignature(String),
}
