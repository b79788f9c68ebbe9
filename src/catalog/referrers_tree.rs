//! The referrers tree of an image: its referrers, their referrers, and so on, in the
//! shape `oras discover --format json` prints.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::digest::Digest;
use crate::oci::{Descriptor, Manifest, Platform};
use crate::reference::Reference;
use crate::registry::{Client, RegistryError};

/// A node of the tree: the subject at the root, referrers below.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerNode {
    /// `registry/repository@digest`
    pub reference: String,
    /// The manifest media type.
    pub media_type: String,
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest size.
    pub size: u64,
    /// The artifact type (referrers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations (referrers only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// This node's own referrers.
    pub referrers: Vec<ReferrerNode>,
}

/// What to walk.
#[derive(Clone, Debug, Default)]
pub struct TreeOptions {
    /// Only referrers of this artifact type, at every level.
    pub artifact_type: Option<String>,
    /// For an index: start from the platform manifest that matches.
    pub platform: Option<Platform>,
    /// Levels of referrers to follow; `None` follows all.
    pub depth: Option<usize>,
}

/// Why the tree could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// `--platform` matched nothing in the index.
    #[error("{reference} has no manifest for platform {platform}; it has: {available}")]
    NoSuchPlatform {
        /// The image.
        reference: String,
        /// The requested platform.
        platform: Platform,
        /// The platforms the index lists.
        available: String,
    },
}

/// Builds the referrers tree of `reference`.
pub async fn referrers_tree(
    client: &Client,
    reference: &Reference,
    options: &TreeOptions,
) -> Result<ReferrerNode, TreeError> {
    let fetched = client
        .get_manifest(&reference.repository, &reference.target)
        .await?;
    let mut root = fetched.descriptor();
    if let (Some(platform), Manifest::Index(index)) = (&options.platform, &fetched.manifest) {
        root = index
            .manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| platform.selects(p)))
            .cloned()
            .ok_or_else(|| TreeError::NoSuchPlatform {
                reference: reference.to_string(),
                platform: platform.clone(),
                available: index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
    }
    let mut seen = HashSet::from([root.digest.clone()]);
    let mut node = node_for(reference, &root);
    node.referrers = walk(client, reference, &root.digest, options, 1, &mut seen).await?;
    Ok(node)
}

fn node_for(reference: &Reference, d: &Descriptor) -> ReferrerNode {
    ReferrerNode {
        reference: reference.with_digest(d.digest.clone()).to_string(),
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        artifact_type: d.artifact_type.clone(),
        annotations: d.annotations.clone(),
        referrers: Vec::new(),
    }
}

async fn walk(
    client: &Client,
    reference: &Reference,
    subject: &Digest,
    options: &TreeOptions,
    level: usize,
    seen: &mut HashSet<Digest>,
) -> Result<Vec<ReferrerNode>, TreeError> {
    if options.depth.is_some_and(|max| level > max) {
        return Ok(Vec::new());
    }
    let mut nodes = Vec::new();
    for d in client
        .referrers(
            &reference.repository,
            subject,
            options.artifact_type.as_deref(),
        )
        .await?
    {
        let mut node = node_for(reference, &d);
        // A cycle cannot be built with content addressing, but a registry can still serve one.
        if seen.insert(d.digest.clone()) {
            node.referrers =
                Box::pin(walk(client, reference, &d.digest, options, level + 1, seen)).await?;
        }
        nodes.push(node);
    }
    Ok(nodes)
}

/// Renders the tree as indented text.
pub fn render_tree(node: &ReferrerNode) -> String {
    let mut out = format!("{}\n", node.reference);
    render_children(&node.referrers, "", &mut out);
    out
}

fn render_children(children: &[ReferrerNode], prefix: &str, out: &mut String) {
    for (i, child) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        let (branch, indent) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let kind = child.artifact_type.as_deref().unwrap_or(&child.media_type);
        out.push_str(&format!("{prefix}{branch}{kind}\n"));
        let inner = format!("{prefix}{indent}");
        out.push_str(&format!("{inner}└── {}\n", child.digest));
        let detail = format!("{inner}    ");
        for (k, v) in &child.annotations {
            out.push_str(&format!("{detail}{k}: {v}\n"));
        }
        render_children(&child.referrers, &detail, out);
    }
}
