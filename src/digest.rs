//! The one digest type refcat uses, and the hashing around it.
//!
//! refcat re-exports [`oci_spec::image::Digest`] so that descriptors, references and
//! everything in between carry the same type. Parsing goes through [`parse`], which also
//! restricts the algorithm to the two that refcat can verify.

use sha2::{Digest as _, Sha256, Sha512};

pub use oci_spec::image::Digest;
use oci_spec::image::DigestAlgorithm;

/// Why a string is not a digest refcat accepts.
#[derive(Clone, Debug, thiserror::Error)]
pub enum DigestError {
    /// The string is not `algorithm:encoded` as the OCI image spec defines it.
    #[error("malformed digest {input:?}: {reason}")]
    Malformed {
        /// The rejected input, shortened if it was long.
        input: String,
        /// What the parser objected to.
        reason: String,
    },
    /// A well-formed digest whose algorithm refcat cannot verify.
    #[error("unsupported digest algorithm in {0:?}: use sha256 or sha512")]
    UnsupportedAlgorithm(String),
    /// No valid tag can stand for this digest (its algorithm or length does not fit).
    #[error("no tag can name {0}: its algorithm or length does not fit a tag")]
    NoTag(String),
    /// Content did not hash to the digest it was fetched by.
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    Mismatch {
        /// The digest the content was requested by.
        expected: Digest,
        /// The digest the content actually has.
        actual: Digest,
    },
}

/// Parses a digest, accepting only sha256 and sha512.
pub fn parse(input: &str) -> Result<Digest, DigestError> {
    let digest: Digest =
        input
            .parse()
            .map_err(|e: oci_spec::OciSpecError| DigestError::Malformed {
                input: crate::text::shorten(input),
                reason: e.to_string(),
            })?;
    match digest.algorithm() {
        DigestAlgorithm::Sha256 | DigestAlgorithm::Sha512 => Ok(digest),
        _ => Err(DigestError::UnsupportedAlgorithm(crate::text::shorten(
            input,
        ))),
    }
}

/// The sha256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    from_hex("sha256", &Sha256::digest(bytes))
}

/// An incremental hasher for the algorithm of an expected digest, so that streamed
/// content can be verified without holding it twice.
pub enum Hasher {
    /// sha256
    Sha256(Sha256),
    /// sha512
    Sha512(Sha512),
}

impl Hasher {
    /// A hasher for the algorithm `expected` uses.
    pub fn for_digest(expected: &Digest) -> Self {
        match expected.algorithm() {
            DigestAlgorithm::Sha512 => Hasher::Sha512(Sha512::new()),
            _ => Hasher::Sha256(Sha256::new()),
        }
    }

    /// Feeds more content.
    pub fn update(&mut self, chunk: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(chunk),
            Hasher::Sha512(h) => h.update(chunk),
        }
    }

    /// Finishes and compares with `expected`.
    pub fn verify(self, expected: &Digest) -> Result<(), DigestError> {
        let actual = match self {
            Hasher::Sha256(h) => from_hex("sha256", &h.finalize()),
            Hasher::Sha512(h) => from_hex("sha512", &h.finalize()),
        };
        if &actual == expected {
            Ok(())
        } else {
            Err(DigestError::Mismatch {
                expected: expected.clone(),
                actual,
            })
        }
    }
}

/// Checks that `bytes` hash to `expected`.
pub fn verify(expected: &Digest, bytes: &[u8]) -> Result<(), DigestError> {
    let mut hasher = Hasher::for_digest(expected);
    hasher.update(bytes);
    hasher.verify(expected)
}

fn from_hex(algorithm: &str, raw: &[u8]) -> Digest {
    let mut text = String::with_capacity(algorithm.len() + 1 + raw.len() * 2);
    text.push_str(algorithm);
    text.push(':');
    for byte in raw {
        text.push_str(&format!("{byte:02x}"));
    }
    text.parse()
        .expect("a freshly computed digest is well-formed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_has_the_well_known_digest() {
        assert_eq!(
            sha256(b"{}").to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn rejects_malformed_and_unverifiable_digests() {
        assert!(matches!(
            parse("sha256:abc"),
            Err(DigestError::Malformed { .. })
        ));
        assert!(matches!(parse("nope"), Err(DigestError::Malformed { .. })));
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(matches!(parse(&upper), Err(DigestError::Malformed { .. })));
        let md5 = format!("md5:{}", "a".repeat(32));
        assert!(matches!(
            parse(&md5),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn verify_detects_tampering() {
        let d = sha256(b"hello");
        assert!(verify(&d, b"hello").is_ok());
        assert!(matches!(
            verify(&d, b"hellO"),
            Err(DigestError::Mismatch { .. })
        ));
    }
}
