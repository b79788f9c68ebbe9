//! Building OCI 1.1 artifact manifests: empty config, a `subject`, and layers.
//!
//! The serialized bytes are deterministic (annotation maps are sorted), because the
//! manifest digest is what gets signed and what a rerun must reproduce.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::digest::{self, Digest};
use crate::media_types::{EMPTY_JSON, EMPTY_JSON_BYTES, OCI_MANIFEST};
use crate::oci::Descriptor;

/// One layer of an artifact: its bytes, media type and file title.
#[derive(Clone, Debug)]
pub struct ArtifactLayer {
    /// The layer media type.
    pub media_type: String,
    /// The exact bytes to store.
    pub data: Bytes,
    /// `org.opencontainers.image.title`, the name `oras pull` writes it to.
    pub title: String,
}

/// An artifact manifest under construction.
#[derive(Clone, Debug)]
pub struct ArtifactBuilder {
    artifact_type: String,
    subject: Option<Descriptor>,
    layers: Vec<ArtifactLayer>,
    annotations: BTreeMap<String, String>,
}

/// A finished artifact: the manifest bytes and every blob it references.
#[derive(Clone, Debug)]
pub struct BuiltArtifact {
    /// The serialized manifest.
    pub manifest: Bytes,
    /// Its digest.
    pub digest: Digest,
    /// Blobs to push before the manifest: the empty config, then each layer.
    pub blobs: Vec<(Digest, Bytes)>,
    /// The descriptor of this manifest as a referrer, with artifactType and annotations.
    pub descriptor: Descriptor,
    /// The manifest this artifact refers to.
    pub subject: Option<Descriptor>,
}

impl ArtifactBuilder {
    /// Starts an artifact of `artifact_type`.
    pub fn new(artifact_type: impl Into<String>) -> Self {
        ArtifactBuilder {
            artifact_type: artifact_type.into(),
            subject: None,
            layers: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// Sets the manifest this artifact refers to.
    pub fn subject(mut self, subject: Descriptor) -> Self {
        self.subject = Some(subject);
        self
    }

    /// Adds a layer.
    pub fn layer(mut self, layer: ArtifactLayer) -> Self {
        self.layers.push(layer);
        self
    }

    /// Sets a manifest annotation.
    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// Serializes the manifest.
    pub fn build(self) -> BuiltArtifact {
        let empty = Bytes::from_static(EMPTY_JSON_BYTES);
        let empty_digest = digest::sha256(&empty);
        let mut blobs = vec![(empty_digest.clone(), empty.clone())];
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|layer| {
                let d = digest::sha256(&layer.data);
                blobs.push((d.clone(), layer.data.clone()));
                json!({
                    "mediaType": layer.media_type,
                    "digest": d.to_string(),
                    "size": layer.data.len(),
                    "annotations": { super::annotations::TITLE: layer.title },
                })
            })
            .collect();
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": self.artifact_type,
            "config": { "mediaType": EMPTY_JSON, "digest": empty_digest.to_string(), "size": empty.len() },
            "layers": layers,
        });
        if let Some(subject) = &self.subject {
            manifest["subject"] = serde_json::to_value(subject).expect("descriptors serialize");
        }
        if !self.annotations.is_empty() {
            manifest["annotations"] = json!(self.annotations);
        }
        let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("json values serialize"));
        let digest = digest::sha256(&bytes);
        let descriptor = Descriptor {
            artifact_type: Some(self.artifact_type),
            annotations: self.annotations,
            ..Descriptor::new(OCI_MANIFEST, digest.clone(), bytes.len() as u64)
        };
        blobs.dedup_by(|a, b| a.0 == b.0);
        BuiltArtifact {
            manifest: bytes,
            digest,
            blobs,
            descriptor,
            subject: self.subject,
        }
    }
}
