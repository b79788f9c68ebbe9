//! DSSE envelopes: what cosign's bundles and attestations (`cosign attest`, the legacy
//! `.att` tag) sign. The signature covers the pre-authentication encoding of the
//! payload type and payload, never the JSON around them.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{KeyPair, PublicKey, SignError};

/// A DSSE envelope.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The payload, base64.
    pub payload: String,
    /// What the payload is, e.g. `application/vnd.in-toto+json`.
    pub payload_type: String,
    /// Signatures over the PAE of type and payload.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// The signature, base64.
    pub sig: String,
}

/// DSSE's pre-authentication encoding: what the signature covers.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Signatures of one envelope that are tried: a signer writes one, a few keys a few.
pub const MAX_SIGNATURES: usize = 8;

impl Envelope {
    /// An envelope around `payload`, signed with `key`.
    pub fn sign(key: &KeyPair, payload_type: &str, payload: &[u8]) -> Envelope {
        let signature = key.sign(&pae(payload_type, payload));
        Envelope {
            payload: BASE64.encode(payload),
            payload_type: payload_type.into(),
            signatures: vec![EnvelopeSignature {
                sig: BASE64.encode(signature),
            }],
        }
    }

    /// The decoded payload, unverified.
    pub fn payload(&self) -> Result<Vec<u8>, SignError> {
        BASE64
            .decode(&self.payload)
            .map_err(|_| SignError::BadSignature("the DSSE payload is not base64".into()))
    }

    /// The decoded payload, when one of the signatures verifies with `key`. Only the
    /// first [`MAX_SIGNATURES`] are tried: each costs a hash of the whole payload.
    pub fn verify(&self, key: &PublicKey) -> Result<Vec<u8>, SignError> {
        let payload = self.payload()?;
        let message = pae(&self.payload_type, &payload);
        let signed = self.signatures.iter().take(MAX_SIGNATURES).any(|s| {
            BASE64
                .decode(&s.sig)
                .is_ok_and(|sig| key.verify(&message, &sig).is_ok())
        });
        if signed {
            Ok(payload)
        } else {
            Err(SignError::BadSignature(
                "no signature in the envelope verifies with this key".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_follows_the_dsse_spec() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn an_envelope_verifies_only_with_its_key_and_payload() {
        let key = KeyPair::generate();
        let mut envelope = Envelope::sign(&key, "text/plain", b"payload");
        assert_eq!(envelope.verify(&key.public_key()).unwrap(), b"payload");
        assert!(envelope.verify(&KeyPair::generate().public_key()).is_err());
        envelope.payload = BASE64.encode(b"another payload");
        assert!(envelope.verify(&key.public_key()).is_err());
    }
}
