//! cosign-compatible key files: an ECDSA P-256 key pair, the private key stored as an
//! `ENCRYPTED SIGSTORE PRIVATE KEY` PEM (scrypt + NaCl secretbox around PKCS#8), the
//! public key as a `PUBLIC KEY` PEM (SPKI).

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::der::pem::{self, LineEnding};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::SignError;
use crate::secret::Secret;

/// The PEM label cosign v2+ writes for private keys.
pub const PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The PEM label cosign v1 wrote; still read.
const LEGACY_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// The PEM label of public keys.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// The scrypt cost parameters cosign accepts (`N` as log2, r, p). Anything else is
/// refused: a tampered file must not make key loading take hours.
const SCRYPT_ACCEPTED: [(u8, u32, u32); 3] = [(15, 8, 1), (16, 8, 1), (17, 8, 1)];
/// What new keys use: cosign's default ("standard", N = 2^16).
const SCRYPT_DEFAULT: (u8, u32, u32) = (16, 8, 1);

/// The JSON inside an encrypted private key PEM, as go-securesystemslib writes it.
#[derive(Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "base64_bytes")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "base64_bytes")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "base64_bytes")]
    nonce: Vec<u8>,
}

/// Go's `[]byte` JSON encoding: standard base64.
mod base64_bytes {
    use base64::Engine as _;

    use super::BASE64;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

/// A signing key. Its `Debug` shows only the public key's hint.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_key_hint", &self.public_key().hint())
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A new random key pair.
    pub fn generate() -> Self {
        KeyPair {
            signing: SigningKey::random(&mut OsRng),
        }
    }

    /// Loads a cosign private key file's contents, decrypting it with `password`.
    pub fn from_encrypted_pem(pem_text: &str, password: &Secret) -> Result<Self, SignError> {
        let (label, body) = pem::decode_vec(pem_text.trim().as_bytes())
            .map_err(|e| SignError::InvalidKey(format!("not a PEM file: {e}")))?;
        if label != PRIVATE_KEY_LABEL && label != LEGACY_PRIVATE_KEY_LABEL {
            return Err(SignError::InvalidKey(format!(
                "expected a {PRIVATE_KEY_LABEL} PEM block, found {label}"
            )));
        }
        let encrypted: EncryptedKey = serde_json::from_slice(&body)
            .map_err(|e| SignError::InvalidKey(format!("encrypted key JSON: {e}")))?;
        if encrypted.kdf.name != "scrypt" || encrypted.cipher.name != "nacl/secretbox" {
            return Err(SignError::InvalidKey(format!(
                "unsupported encryption {}/{} (cosign uses scrypt/nacl/secretbox)",
                encrypted.kdf.name, encrypted.cipher.name
            )));
        }
        let params = &encrypted.kdf.params;
        let cost = SCRYPT_ACCEPTED
            .into_iter()
            .find(|(log_n, r, p)| 1u64 << log_n == params.n && *r == params.r && *p == params.p)
            .ok_or_else(|| {
                SignError::InvalidKey(format!(
                    "unsupported scrypt parameters N={} r={} p={}",
                    params.n, params.r, params.p
                ))
            })?;
        let key = derive_key(password, &encrypted.kdf.salt, cost)?;
        let nonce: [u8; 24] = encrypted
            .cipher
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| SignError::InvalidKey("the nonce is not 24 bytes".into()))?;
        let pkcs8 = XSalsa20Poly1305::new(&key.into())
            .decrypt(&nonce.into(), encrypted.ciphertext.as_slice())
            .map_err(|_| SignError::WrongPassword)?;
        let signing = SigningKey::from_pkcs8_der(&pkcs8)
            .map_err(|e| SignError::InvalidKey(format!("not an ECDSA P-256 PKCS#8 key: {e}")))?;
        Ok(KeyPair { signing })
    }

    /// The private key as cosign writes it, encrypted with `password`.
    pub fn to_encrypted_pem(&self, password: &Secret) -> Result<String, SignError> {
        let pkcs8 = self
            .signing
            .to_pkcs8_der()
            .map_err(|e| SignError::InvalidKey(e.to_string()))?;
        let mut salt = [0u8; 32];
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut nonce);
        let key = derive_key(password, &salt, SCRYPT_DEFAULT)?;
        let ciphertext = XSalsa20Poly1305::new(&key.into())
            .encrypt(&nonce.into(), pkcs8.as_bytes())
            .map_err(|_| SignError::InvalidKey("encryption failed".into()))?;
        let (log_n, r, p) = SCRYPT_DEFAULT;
        let body = serde_json::to_vec(&EncryptedKey {
            kdf: Kdf {
                name: "scrypt".into(),
                params: ScryptParams {
                    n: 1 << log_n,
                    r,
                    p,
                },
                salt: salt.to_vec(),
            },
            cipher: Cipher {
                name: "nacl/secretbox".into(),
                nonce: nonce.to_vec(),
            },
            ciphertext,
        })
        .expect("the key JSON serializes");
        pem::encode_string(PRIVATE_KEY_LABEL, LineEnding::LF, &body)
            .map_err(|e| SignError::InvalidKey(e.to_string()))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.signing.verifying_key())
    }

    /// An ECDSA P-256 / SHA-256 signature over `message`, DER-encoded as cosign writes it.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.signing.sign(message);
        signature.to_der().as_bytes().to_vec()
    }
}

/// A public key that verifies signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.hint()).finish()
    }
}

impl PublicKey {
    /// Reads a `PUBLIC KEY` PEM (as `cosign generate-key-pair` writes `cosign.pub`).
    pub fn from_pem(pem_text: &str) -> Result<Self, SignError> {
        VerifyingKey::from_public_key_pem(pem_text.trim())
            .map(PublicKey)
            .map_err(|e| SignError::InvalidKey(format!("not an ECDSA P-256 public key PEM: {e}")))
    }

    /// The `PUBLIC KEY` PEM.
    pub fn to_pem(&self) -> String {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 public key encodes")
    }

    /// The key hint Sigstore bundles carry: base64 of the SHA-256 of the SPKI DER.
    pub fn hint(&self) -> String {
        let der = self
            .0
            .to_public_key_der()
            .expect("a P-256 public key encodes");
        BASE64.encode(Sha256::digest(der.as_bytes()))
    }

    /// Checks a DER (or fixed-size) ECDSA signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignError> {
        let signature = DerSignature::try_from(signature)
            .ok()
            .and_then(|der| Signature::from_der(der.as_bytes()).ok())
            .or_else(|| Signature::from_slice(signature).ok())
            .ok_or(SignError::BadSignature("not an ECDSA signature".into()))?;
        // Go's ecdsa may produce high-S signatures; verify their low-S twin.
        let signature = signature.normalize_s().unwrap_or(signature);
        self.0
            .verify(message, &signature)
            .map_err(|_| SignError::BadSignature("does not verify with this key".into()))
    }
}

fn derive_key(
    password: &Secret,
    salt: &[u8],
    (log_n, r, p): (u8, u32, u32),
) -> Result<[u8; 32], SignError> {
    let params = scrypt::Params::new(log_n, r, p, 32)
        .map_err(|e| SignError::InvalidKey(format!("scrypt parameters: {e}")))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password.expose().as_bytes(), salt, &params, &mut key)
        .map_err(|e| SignError::InvalidKey(format!("scrypt: {e}")))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encrypted_key_round_trips_and_refuses_a_wrong_password() {
        let pair = KeyPair::generate();
        let pem_text = pair
            .to_encrypted_pem(&Secret::new("correct horse"))
            .unwrap();
        assert!(pem_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        let loaded = KeyPair::from_encrypted_pem(&pem_text, &Secret::new("correct horse")).unwrap();
        assert_eq!(loaded.public_key(), pair.public_key());
        assert!(matches!(
            KeyPair::from_encrypted_pem(&pem_text, &Secret::new("wrong")),
            Err(SignError::WrongPassword)
        ));
        let sig = loaded.sign(b"payload");
        pair.public_key().verify(b"payload", &sig).unwrap();
        assert!(pair.public_key().verify(b"payload!", &sig).is_err());
        let public = PublicKey::from_pem(&pair.public_key().to_pem()).unwrap();
        assert_eq!(public, pair.public_key());
        assert!(!format!("{pair:?}").contains(&pem_text[40..80]));
    }

    #[test]
    fn tampered_scrypt_costs_are_refused() {
        let pair = KeyPair::generate();
        let pem_text = pair.to_encrypted_pem(&Secret::new("pw")).unwrap();
        let (_, body) = pem::decode_vec(pem_text.as_bytes()).unwrap();
        let json = String::from_utf8(body)
            .unwrap()
            .replace("65536", "1073741824");
        let tampered =
            pem::encode_string(PRIVATE_KEY_LABEL, LineEnding::LF, json.as_bytes()).unwrap();
        let err = KeyPair::from_encrypted_pem(&tampered, &Secret::new("pw")).unwrap_err();
        assert!(
            err.to_string().contains("unsupported scrypt parameters"),
            "{err}"
        );
    }
}
