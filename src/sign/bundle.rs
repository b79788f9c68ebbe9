//! cosign v3's signature layout: a Sigstore bundle v0.3 pushed as a referrer of the
//! signed manifest. The bundle holds a DSSE envelope over an in-toto v1 statement
//! whose subject is the signed digest and whose predicate type is cosign's
//! `https://sigstore.dev/cosign/sign/v1`; with a key (no certificate, no transparency
//! log) the verification material is just the public key's hint.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::dsse::Envelope;
use super::{KeyPair, PublicKey, SignError};
use crate::artifact::annotations::{BUNDLE_CONTENT, BUNDLE_PREDICATE_TYPE, CREATED};
use crate::artifact::{ArtifactBuilder, ArtifactLayer, BuiltArtifact};
use crate::digest::Digest;
use crate::media_types::{IN_TOTO_JSON, SIGSTORE_BUNDLE_V03};
use crate::oci::Descriptor;

/// The predicate type cosign v3 uses for a plain signature.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The file name `oras pull` gives the bundle.
const BUNDLE_TITLE: &str = "signature.sigstore.json";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: VerificationMaterial,
    dsse_envelope: Envelope,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationMaterial {
    public_key: KeyHint,
}

#[derive(Serialize, Deserialize)]
struct KeyHint {
    hint: String,
}

/// The in-toto statement cosign signs for `subject`.
fn statement(subject: &Digest) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "digest": { subject.algorithm().as_ref(): subject.digest() } }],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }))
    .expect("the statement serializes")
}

/// The bundle JSON signing `subject` with `key`.
pub fn sign(key: &KeyPair, subject: &Digest) -> Vec<u8> {
    let payload = statement(subject);
    serde_json::to_vec(&Bundle {
        media_type: SIGSTORE_BUNDLE_V03.into(),
        verification_material: VerificationMaterial {
            public_key: KeyHint {
                hint: key.public_key().hint(),
            },
        },
        dsse_envelope: Envelope::sign(key, IN_TOTO_JSON, &payload),
    })
    .expect("the bundle serializes")
}

/// The referrer artifact that carries a bundle for `subject`, as cosign v3 pushes it.
pub fn artifact(key: &KeyPair, subject: &Descriptor, created: &str) -> BuiltArtifact {
    ArtifactBuilder::new(SIGSTORE_BUNDLE_V03)
        .subject(subject.clone())
        .layer(ArtifactLayer {
            media_type: SIGSTORE_BUNDLE_V03.into(),
            data: Bytes::from(sign(key, &subject.digest)),
            title: BUNDLE_TITLE.into(),
        })
        .annotation(BUNDLE_CONTENT, "dsse-envelope")
        .annotation(BUNDLE_PREDICATE_TYPE, COSIGN_SIGN_PREDICATE)
        .annotation(CREATED, created)
        .build()
}

/// Checks that `bundle` is a signature by `key` over `subject`.
pub fn verify(bundle: &[u8], key: &PublicKey, subject: &Digest) -> Result<(), SignError> {
    let bad = |reason: &str| SignError::BadSignature(reason.to_string());
    let bundle: Bundle =
        serde_json::from_slice(bundle).map_err(|e| bad(&format!("not a Sigstore bundle: {e}")))?;
    if bundle.media_type != SIGSTORE_BUNDLE_V03 {
        return Err(bad(&format!(
            "unexpected bundle type {}",
            bundle.media_type
        )));
    }
    let envelope = &bundle.dsse_envelope;
    if envelope.payload_type != IN_TOTO_JSON {
        return Err(bad(&format!(
            "unexpected payload type {}",
            envelope.payload_type
        )));
    }
    let payload = envelope
        .verify(key)
        .map_err(|_| bad("no signature in the bundle verifies with this key"))?;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Statement {
        #[serde(rename = "_type")]
        kind: String,
        subject: Vec<StatementSubject>,
        predicate_type: String,
    }
    #[derive(Deserialize)]
    struct StatementSubject {
        digest: std::collections::BTreeMap<String, String>,
    }
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| bad(&format!("the payload is not an in-toto statement: {e}")))?;
    if statement.kind != STATEMENT_TYPE || statement.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(bad("the statement is not a cosign signature"));
    }
    let names_subject = statement.subject.iter().any(|s| {
        s.digest
            .get(subject.algorithm().as_ref())
            .map(String::as_str)
            == Some(subject.digest())
    });
    if !names_subject {
        return Err(bad(&format!("the statement does not name {subject}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_verifies_only_for_its_key_and_subject() {
        let key = KeyPair::generate();
        let subject = crate::digest::sha256(b"manifest");
        let bundle = sign(&key, &subject);
        verify(&bundle, &key.public_key(), &subject).unwrap();
        let other = crate::digest::sha256(b"another manifest");
        assert!(verify(&bundle, &key.public_key(), &other).is_err());
        assert!(verify(&bundle, &KeyPair::generate().public_key(), &subject).is_err());
        let tampered = String::from_utf8(bundle)
            .unwrap()
            .replace("dsseEnvelope", "dsseEnvelopX");
        assert!(verify(tampered.as_bytes(), &key.public_key(), &subject).is_err());
    }
}
