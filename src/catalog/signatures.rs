//! Whether an artifact is signed: its Sigstore bundle referrers first, then the legacy
//! `.sig` tag, in the order `cosign verify` searches them.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::artifact::annotations::BUNDLE_CONTENT;
use crate::digest::Digest;
use crate::media_types::SIGSTORE_BUNDLE_V03;
use crate::oci::{Descriptor, ImageManifest, Manifest};
use crate::reference::{RepositoryName, Target};
use crate::registry::{Client, RegistryError};
use crate::sign::{bundle, legacy, PublicKey, SignError};

/// Which signatures the catalog checks, and whether it hides what fails.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// Public keys; none means signatures are not checked.
    keys: Vec<PublicKey>,
    /// Hide artifacts whose signature does not verify.
    require: bool,
    /// Artifacts that verified, by `repository@digest`, for a while: a signature can
    /// be deleted, so a verdict is checked again once it is older than the recheck
    /// interval. A failure is not kept, as its signature may still arrive.
    proven: Proven,
}

/// Verified artifacts remembered, and how many of their manifests; old entries go first.
const PROVEN_ENTRIES: u64 = 100_000;
const PROVEN_MANIFESTS: u64 = 20_000;

/// How long a verified verdict is trusted before its signature is checked again, unless
/// [`Trust::recheck_after`] says otherwise.
pub const RECHECK: Duration = Duration::from_secs(3600);

#[derive(Clone)]
struct Proven {
    /// The signature format that verified.
    verdicts: moka::future::Cache<String, &'static str>,
    /// Manifests of verified artifacts a publisher read, so a walk need not read them
    /// again (digest-addressed: they cannot change).
    manifests: moka::future::Cache<String, Arc<ImageManifest>>,
}

impl Proven {
    fn new(recheck: Duration) -> Self {
        Proven {
            verdicts: moka::future::Cache::builder()
                .max_capacity(PROVEN_ENTRIES)
                .time_to_live(recheck)
                .build(),
            manifests: moka::future::Cache::new(PROVEN_MANIFESTS),
        }
    }
}

impl Default for Proven {
    fn default() -> Self {
        Proven::new(RECHECK)
    }
}

impl std::fmt::Debug for Proven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} verified", self.verdicts.entry_count())
    }
}

impl Trust {
    /// Checks signatures with `keys`; with `require`, hides what does not verify.
    pub fn new(keys: Vec<PublicKey>, require: bool) -> Self {
        Trust {
            keys,
            require,
            proven: Proven::default(),
        }
    }

    /// Checks a verified artifact's signature again once its verdict is older than
    /// `recheck` (by default [`RECHECK`]), so that a deleted signature stops counting.
    pub fn recheck_after(mut self, recheck: Duration) -> Self {
        self.proven = Proven::new(recheck);
        self
    }

    /// Whether signatures are checked at all.
    pub fn checks(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The keys signatures are checked with.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Whether what does not verify is hidden.
    pub fn requires(&self) -> bool {
        self.require
    }

    /// The verdict on `artifact`, or `None` when no keys are configured.
    pub async fn verdict(
        &self,
        client: &Client,
        repository: &RepositoryName,
        artifact: &Digest,
    ) -> Result<Option<Verdict>, RegistryError> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let key = format!("{repository}@{artifact}");
        if let Some(format) = self.proven.verdicts.get(&key).await {
            return Ok(Some(Verdict::Verified { format }));
        }
        let verdict = verify(client, repository, artifact, &self.keys).await?;
        if let Verdict::Verified { format } = verdict {
            self.proven.verdicts.insert(key, format).await;
        }
        Ok(Some(verdict))
    }

    /// The manifest of a verified artifact, remembered by [`Trust::remember_manifest`].
    pub async fn proven_manifest(
        &self,
        repository: &RepositoryName,
        artifact: &Digest,
    ) -> Option<ImageManifest> {
        let key = format!("{repository}@{artifact}");
        let manifest = self.proven.manifests.get(&key).await?;
        Some(manifest.as_ref().clone())
    }

    /// Remembers the manifest of `artifact`, which verified.
    pub async fn remember_manifest(
        &self,
        repository: &RepositoryName,
        artifact: &Digest,
        manifest: &ImageManifest,
    ) {
        let key = format!("{repository}@{artifact}");
        // A walk proves the same artifacts again and again: copy each manifest once.
        if !self.proven.manifests.contains_key(&key) {
            self.proven
                .manifests
                .insert(key, Arc::new(manifest.clone()))
                .await;
        }
    }
}

/// Signatures are small; anything bigger is not one.
const MAX_SIGNATURE_BYTES: u64 = 1024 * 1024;

/// The verdict on one artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
#[derive(utoipa::ToSchema)]
pub enum Verdict {
    /// A signature verifies with one of the keys.
    Verified {
        /// `bundle` or `legacy`.
        format: &'static str,
    },
    /// Signatures exist, but none verifies with these keys.
    Invalid {
        /// Why the last one failed.
        reason: String,
    },
    /// No signature at all.
    Unsigned,
}

impl Verdict {
    /// Whether the artifact verified.
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified { .. })
    }
}

fn is_bundle(d: &Descriptor) -> bool {
    d.artifact_type.as_deref() == Some(SIGSTORE_BUNDLE_V03)
        || d.annotations.contains_key(BUNDLE_CONTENT)
}

async fn image_layers(
    client: &Client,
    repository: &RepositoryName,
    target: &Target,
) -> Result<Vec<Descriptor>, RegistryError> {
    match client.get_manifest(repository, target).await?.manifest {
        Manifest::Image(m) => Ok(m.layers),
        Manifest::Index(_) => Ok(Vec::new()),
    }
}

/// A signature blob; content that does not match its digest was tampered with, which
/// makes the signature invalid rather than the check impossible.
async fn fetch(
    client: &Client,
    repository: &RepositoryName,
    layer: &Descriptor,
) -> Result<Result<bytes::Bytes, String>, RegistryError> {
    match client
        .get_blob(repository, &layer.digest, Some(MAX_SIGNATURE_BYTES))
        .await
    {
        Ok(data) => Ok(Ok(data)),
        Err(e @ RegistryError::Digest { .. }) => Ok(Err(e.to_string())),
        Err(e) => Err(e),
    }
}

/// Ok when `check` passes for any key; otherwise why it failed for the last one.
fn any_key(
    keys: &[PublicKey],
    check: impl Fn(&PublicKey) -> Result<(), SignError>,
) -> Result<(), String> {
    let mut reason = "no public key to verify with".to_string();
    for key in keys {
        match check(key) {
            Ok(()) => return Ok(()),
            Err(e) => reason = e.to_string(),
        }
    }
    Err(reason)
}

/// Checks the signatures of the manifest `signed` against `keys`.
pub async fn verify(
    client: &Client,
    repository: &RepositoryName,
    signed: &Digest,
    keys: &[PublicKey],
) -> Result<Verdict, RegistryError> {
    let mut failure = None;
    let referrers = client.referrers(repository, signed, None).await?;
    for candidate in referrers.iter().filter(|d| is_bundle(d)) {
        let layers = image_layers(
            client,
            repository,
            &Target::Digest(candidate.digest.clone()),
        )
        .await?;
        for layer in layers
            .iter()
            .filter(|l| l.media_type == SIGSTORE_BUNDLE_V03)
        {
            let data = match fetch(client, repository, layer).await? {
                Ok(data) => data,
                Err(reason) => {
                    failure = Some(reason);
                    continue;
                }
            };
            match any_key(keys, |k| bundle::verify(&data, k, signed)) {
                Ok(()) => return Ok(Verdict::Verified { format: "bundle" }),
                Err(reason) => failure = Some(reason),
            }
        }
    }
    // A digest cosign's `.sig` tag cannot name (sha512) has no legacy signature.
    let layers = match legacy::signature_tag(signed) {
        Ok(tag) => match image_layers(client, repository, &Target::Tag(tag)).await {
            Ok(layers) => layers,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        },
        Err(_) => Vec::new(),
    };
    for layer in &layers {
        let payload = match fetch(client, repository, layer).await? {
            Ok(data) => data,
            Err(reason) => {
                failure = Some(reason);
                continue;
            }
        };
        match any_key(keys, |k| legacy::verify(layer, &payload, k, signed)) {
            Ok(()) => return Ok(Verdict::Verified { format: "legacy" }),
            Err(reason) => failure = Some(reason),
        }
    }
    Ok(match failure {
        Some(reason) => Verdict::Invalid { reason },
        None => Verdict::Unsigned,
    })
}
