//! cosign's legacy signature layout: an image manifest under the tag
//! `sha256-<hex>.sig` with one simple-signing layer per signature, the base64 DER
//! signature in the layer's `dev.cosignproject.cosign/signature` annotation. It is the
//! fallback for registries that cannot take referrers, and `--signature-format legacy`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::json;

use super::{KeyPair, PublicKey, SignError};
use crate::artifact::annotations::COSIGN_SIGNATURE;
use crate::digest::{self, Digest};
use crate::media_types::{COSIGN_SIMPLE_SIGNING, OCI_CONFIG, OCI_MANIFEST};
use crate::oci::Descriptor;
use crate::reference::Tag;

/// The tag that holds the legacy signatures of `subject`.
pub fn signature_tag(subject: &Digest) -> Result<Tag, digest::DigestError> {
    crate::tag_schema::cosign_tag(subject, ".sig")
}

/// The simple-signing payload cosign signs, byte for byte as cosign writes it.
/// `docker_reference` is `registry/repository`.
pub fn payload(docker_reference: &str, subject: &Digest) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":{}}},"image":{{"docker-manifest-digest":{}}},"type":"cosign container image signature"}},"optional":null}}"#,
        json!(docker_reference),
        json!(subject.to_string())
    )
    .into_bytes()
}

/// One signature layer: the payload blob and its descriptor, signature annotated.
pub fn layer(key: &KeyPair, docker_reference: &str, subject: &Digest) -> (Descriptor, Bytes) {
    let payload = Bytes::from(payload(docker_reference, subject));
    let mut descriptor = Descriptor::new(
        COSIGN_SIMPLE_SIGNING,
        digest::sha256(&payload),
        payload.len() as u64,
    );
    descriptor
        .annotations
        .insert(COSIGN_SIGNATURE.into(), BASE64.encode(key.sign(&payload)));
    (descriptor, payload)
}

/// The `.sig` manifest over `layers` and its config blob, shaped as cosign's.
pub fn manifest(layers: &[Descriptor]) -> (Bytes, Bytes) {
    let epoch = "0001-01-01T00:00:00Z";
    let config = Bytes::from(
        serde_json::to_vec(&json!({
            "architecture": "",
            "created": epoch,
            "history": layers.iter().map(|_| json!({ "created": epoch })).collect::<Vec<_>>(),
            "os": "",
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(),
            },
            "config": {},
        }))
        .expect("the config serializes"),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": Descriptor::new(OCI_CONFIG, digest::sha256(&config), config.len() as u64),
        "layers": layers,
    });
    (
        Bytes::from(serde_json::to_vec(&manifest).expect("the manifest serializes")),
        config,
    )
}

/// Checks one signature layer: `payload` is its blob, `layer` its descriptor.
pub fn verify(
    layer: &Descriptor,
    payload: &[u8],
    key: &PublicKey,
    subject: &Digest,
) -> Result<(), SignError> {
    let bad = |reason: String| SignError::BadSignature(reason);
    let signature = layer
        .annotations
        .get(COSIGN_SIGNATURE)
        .ok_or_else(|| bad("the layer has no signature annotation".into()))?;
    let signature = BASE64
        .decode(signature)
        .map_err(|_| bad("the signature is not base64".into()))?;
    key.verify(payload, &signature)?;
    let claims: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| bad(format!("the payload is not JSON: {e}")))?;
    let signed = claims["critical"]["image"]["docker-manifest-digest"].as_str();
    if signed != Some(subject.as_ref()) {
        return Err(bad(format!(
            "the payload signs {}, not {subject}",
            signed.unwrap_or("nothing")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_verifies_for_its_subject_only() {
        let key = KeyPair::generate();
        let subject = digest::sha256(b"m");
        let (layer, payload) = layer(&key, "r.example/a/b", &subject);
        verify(&layer, &payload, &key.public_key(), &subject).unwrap();
        assert!(verify(&layer, &payload, &key.public_key(), &digest::sha256(b"n")).is_err());
        assert!(verify(
            &layer,
            &payload,
            &KeyPair::generate().public_key(),
            &subject
        )
        .is_err());
        assert_eq!(
            signature_tag(&subject).unwrap().as_str(),
            format!("sha256-{}.sig", subject.digest())
        );
        let (manifest, config) = manifest(std::slice::from_ref(&layer));
        let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(m["layers"][0]["digest"], layer.digest.to_string());
        assert_eq!(m["config"]["digest"], digest::sha256(&config).to_string());
    }
}
