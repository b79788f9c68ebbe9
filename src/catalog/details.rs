//! The details view: per-platform OCI config of an image.

use std::collections::BTreeMap;

use serde::Serialize;

use super::image::platform_images;
use super::CatalogError;
use crate::reference::Reference;
use crate::registry::Client;

/// Per-platform configuration of one tag or digest.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetailsView {
    /// `registry/repository:tag` or `@digest`, as asked.
    pub reference: String,
    /// By platform (`os/arch[/variant]`).
    pub platforms: BTreeMap<String, PlatformDetails>,
}

/// One platform's configuration.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformDetails {
    /// The platform manifest's digest.
    pub digest: String,
    /// The config's `created`.
    pub created: Option<String>,
    /// Environment, `KEY=value`.
    pub env: Vec<String>,
    /// Default arguments.
    pub cmd: Vec<String>,
    /// The executable.
    pub entrypoint: Vec<String>,
    /// The user.
    pub user: Option<String>,
    /// The working directory.
    pub working_dir: Option<String>,
    /// Exposed ports, `port/proto`.
    pub exposed_ports: Vec<String>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// How many layers.
    pub layer_count: usize,
    /// Their compressed sizes, in order.
    pub layer_sizes: Vec<u64>,
    /// The sum of the layer sizes.
    pub total_size: u64,
}

/// The details view of `reference`.
pub async fn details(client: &Client, reference: &Reference) -> Result<DetailsView, CatalogError> {
    let mut platforms = BTreeMap::new();
    for image in platform_images(client, reference).await?.1 {
        let c = image.config.config;
        let layer_sizes: Vec<u64> = image.manifest.layers.iter().map(|l| l.size).collect();
        platforms.insert(
            image.subject.platform.to_string(),
            PlatformDetails {
                digest: image.subject.descriptor.digest.to_string(),
                created: image.config.created,
                env: c.env.unwrap_or_default(),
                cmd: c.cmd.unwrap_or_default(),
                entrypoint: c.entrypoint.unwrap_or_default(),
                user: c.user.filter(|u| !u.is_empty()),
                working_dir: c.working_dir.filter(|w| !w.is_empty()),
                exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
                labels: c.labels.unwrap_or_default(),
                layer_count: layer_sizes.len(),
                total_size: layer_sizes.iter().sum(),
                layer_sizes,
            },
        );
    }
    Ok(DetailsView {
        reference: reference.to_string(),
        platforms,
    })
}
