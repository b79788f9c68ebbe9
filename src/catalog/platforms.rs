//! A reference resolved to its platform image manifests, the subjects of refcat's
//! artifacts. An index is
//! expanded; BuildKit attestation manifests (`unknown/unknown`) are not images and are
//! skipped; a single manifest takes its platform from its config. A manifest an index
//! lists more than once is one subject: its artifacts are made, and read, once.

use std::collections::HashSet;
use std::future::Future;

use futures_util::future::try_join_all;

use crate::digest::Digest;
use crate::media_types::{DOCKER_CONFIG, DOCKER_MANIFEST, IN_TOTO_JSON, OCI_CONFIG, OCI_MANIFEST};
use crate::oci::{Descriptor, Manifest, Platform};
use crate::reference::Reference;
use crate::registry::{Client, FetchedManifest};

/// Why a reference did not resolve to platform manifests.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ResolveError {
    /// The registry failed or refused.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The reference names something that is not a container image.
    #[error("{reference} is not a container image: {reason}")]
    NotAnImage {
        /// The reference.
        reference: String,
        /// Why not.
        reason: String,
    },
    /// No platform manifest matches the platform filter.
    #[error("{reference} has no platform manifest for {wanted}; it has: {available}")]
    NoPlatform {
        /// The reference.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// What the image has.
        available: String,
    },
}

/// One image manifest of one platform: what every artifact's `subject` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformManifest {
    /// The manifest's descriptor (media type, digest, size).
    pub descriptor: Descriptor,
    /// Its platform.
    pub platform: Platform,
}

const ATTESTATION_TYPE: &str = "vnd.docker.reference.type";
/// The most distinct platform manifests an index may list. Real multi-platform images
/// have a few dozen at most; a pusher's index of thousands would cost a scan, a signed
/// set and referrers calls for each of them.
pub const MAX_PLATFORMS: usize = 256;
/// Image configs are small; anything bigger is not one.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Whether a manifest is an image or an index of images, as opposed to a referrer
/// (refcat's own artifacts and signatures among them) or a non-image artifact (a Helm
/// chart, an `oras push`). The worker queues only images; the views list only images.
pub fn is_image(manifest: &Manifest) -> bool {
    match manifest {
        // BuildKit's attestation manifests have an image config but only in-toto layers.
        Manifest::Image(m) => {
            m.subject.is_none()
                && [OCI_CONFIG, DOCKER_CONFIG].contains(&m.config.media_type.as_str())
                && !m.layers.iter().all(|l| l.media_type == IN_TOTO_JSON)
        }
        Manifest::Index(i) => i.subject.is_none(),
    }
}

/// The platform manifests behind `reference`, filtered by `platform` when given.
pub async fn platform_manifests(
    client: &Client,
    reference: &Reference,
    platform: Option<&Platform>,
) -> Result<Vec<PlatformManifest>, ResolveError> {
    resolve(client, reference, platform).await.map(|(_, p)| p)
}

/// The descriptor of what `reference` names (an index or a manifest), and the platform
/// manifests behind it, filtered by `platform` when given.
pub async fn resolve(
    client: &Client,
    reference: &Reference,
    platform: Option<&Platform>,
) -> Result<(Descriptor, Vec<PlatformManifest>), ResolveError> {
    let top = client
        .get_manifest(&reference.repository, &reference.target)
        .await?;
    resolve_fetched(client, reference, &top, platform).await
}

/// [`resolve`] for a manifest the caller has already fetched.
pub async fn resolve_fetched(
    client: &Client,
    reference: &Reference,
    top: &FetchedManifest,
    platform: Option<&Platform>,
) -> Result<(Descriptor, Vec<PlatformManifest>), ResolveError> {
    let all = match &top.manifest {
        Manifest::Index(index) => index
            .manifests
            .iter()
            .filter(|d| !d.annotations.contains_key(ATTESTATION_TYPE))
            .filter(|d| d.media_type == OCI_MANIFEST || d.media_type == DOCKER_MANIFEST)
            .filter_map(|d| {
                let platform = d.platform.clone()?;
                (platform.os != "unknown").then(|| PlatformManifest {
                    descriptor: Descriptor::new(d.media_type.clone(), d.digest.clone(), d.size),
                    platform,
                })
            })
            .collect(),
        Manifest::Image(image) => {
            if !is_image(&top.manifest) {
                return Err(ResolveError::NotAnImage {
                    reference: reference.to_string(),
                    reason: format!(
                        "it is an artifact (config {}{}), not a container image",
                        image.config.media_type,
                        if image.subject.is_some() {
                            ", with a subject"
                        } else {
                            ""
                        },
                    ),
                });
            }
            let config = client
                .get_blob(
                    &reference.repository,
                    &image.config.digest,
                    Some(MAX_CONFIG_BYTES),
                )
                .await?;
            let p: crate::oci::ImageConfig =
                serde_json::from_slice(&config).map_err(|e| ResolveError::NotAnImage {
                    reference: reference.to_string(),
                    reason: format!("its config does not parse: {e}"),
                })?;
            vec![PlatformManifest {
                descriptor: top.descriptor(),
                platform: Platform {
                    architecture: p.architecture,
                    os: p.os,
                    variant: p.variant.filter(|v| !v.is_empty()),
                },
            }]
        }
    };
    if all.is_empty() {
        return Err(ResolveError::NotAnImage {
            reference: reference.to_string(),
            reason: "its index lists no platform image manifests".into(),
        });
    }
    let distinct: HashSet<&Digest> = all.iter().map(|m| &m.descriptor.digest).collect();
    if distinct.len() > MAX_PLATFORMS {
        return Err(ResolveError::NotAnImage {
            reference: reference.to_string(),
            reason: format!(
                "its index lists {} distinct platform image manifests; refcat handles at most {MAX_PLATFORMS}",
                distinct.len()
            ),
        });
    }
    // A manifest listed again (under the same platform or another) is the same subject.
    let (mut seen, mut names) = (HashSet::new(), HashSet::new());
    let (mut chosen, mut available) = (Vec::new(), Vec::new());
    for m in all {
        let name = m.platform.to_string();
        if names.insert(name.clone()) {
            available.push(name);
        }
        if platform.is_none_or(|p| p.selects(&m.platform))
            && seen.insert(m.descriptor.digest.clone())
        {
            chosen.push(m);
        }
    }
    if chosen.is_empty() {
        return Err(ResolveError::NoPlatform {
            reference: reference.to_string(),
            wanted: platform.map(ToString::to_string).unwrap_or_default(),
            available: available.join(", "),
        });
    }
    Ok((top.descriptor(), chosen))
}

/// What `reference` names, and each of its platform manifests with what `read` makes of
/// it, read at once. `read` needs only the manifest's digest, so for a single image
/// manifest it runs while the config is fetched for the platform: a slow registry costs
/// one wait for the two, not two.
pub async fn with_each_platform<T, E, F, Fut>(
    client: &Client,
    reference: &Reference,
    read: F,
) -> Result<(Descriptor, Vec<(PlatformManifest, T)>), E>
where
    F: Fn(Digest) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<ResolveError>,
{
    let top = client
        .get_manifest(&reference.repository, &reference.target)
        .await
        .map_err(ResolveError::from)?;
    if let Manifest::Image(_) = top.manifest {
        let (resolved, value) = tokio::join!(
            resolve_fetched(client, reference, &top, None),
            read(top.digest.clone())
        );
        let (descriptor, subjects) = resolved?;
        // An image manifest resolves to itself alone.
        let one = subjects.into_iter().zip(std::iter::once(value?)).collect();
        return Ok((descriptor, one));
    }
    let (descriptor, subjects) = resolve_fetched(client, reference, &top, None).await?;
    let read = &read;
    let all = try_join_all(subjects.into_iter().map(|subject| async move {
        let value = read(subject.descriptor.digest.clone()).await?;
        Ok::<_, E>((subject, value))
    }))
    .await?;
    Ok((descriptor, all))
}
