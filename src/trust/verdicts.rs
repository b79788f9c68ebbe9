//! Verdicts on artifacts, and how long each is believed: until the recheck interval,
//! whatever they are (a signature can be deleted, and a forgery does not mend itself).
//! refcat signs an artifact before it pushes it, so none of its own is ever seen
//! unsigned. A flood of look-alikes costs one check each per interval, not one per view.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::digest::Digest;
use crate::oci::ImageManifest;

/// The verdict on one artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum Verdict {
    /// A signature verifies with one of the keys.
    Verified {
        /// `bundle`, `legacy` or `dsse`.
        format: &'static str,
    },
    /// Signatures exist, but none verifies with these keys.
    Invalid {
        /// Why the last one failed.
        reason: String,
    },
    /// No signature at all.
    Unsigned,
    /// Nothing was checked: the catalog runs in the explicit unverified mode (no keys).
    NotChecked,
}

impl Verdict {
    /// Whether the artifact verified.
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified { .. })
    }
}

/// Whether a view's signatures were checked at all: every catalog-wide view says so,
/// so that one served without keys is never read as checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Checking {
    /// With keys: what the view counts verified.
    Checked,
    /// Without keys (the explicit unverified mode): nothing was checked.
    NotChecked,
}

/// How long a verified verdict is trusted before its signature is checked again, unless
/// [`super::Trust::recheck_after`] says otherwise.
pub const RECHECK: Duration = Duration::from_secs(3600);

/// Bytes the remembered verdicts and manifests may hold.
const VERDICT_BYTES: u64 = 16 * 1024 * 1024;
const MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// Remembered verdicts by `repository@artifact`, and the manifests of verified artifacts
/// (digest-addressed: they cannot change). Clones share them.
#[derive(Clone)]
pub(super) struct Verdicts {
    judged: moka::future::Cache<String, Verdict>,
    /// The signature manifest that proved each artifact, read first the next time.
    provers: moka::future::Cache<String, Digest>,
    manifests: moka::future::Cache<String, Arc<ImageManifest>>,
}

fn weigh_verdict(key: &str, verdict: &Verdict) -> u32 {
    let reason = match verdict {
        Verdict::Invalid { reason } => reason.len(),
        _ => 0,
    };
    u32::try_from(key.len() + reason + 64).unwrap_or(u32::MAX)
}

fn weigh_manifest(key: &str, manifest: &Arc<ImageManifest>) -> u32 {
    let annotations: usize = manifest
        .annotations
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let size = key.len() + annotations + 256 * (manifest.layers.len() + 2);
    u32::try_from(size).unwrap_or(u32::MAX)
}

impl Verdicts {
    pub(super) fn new(recheck: Duration) -> Self {
        Verdicts {
            judged: moka::future::Cache::builder()
                .max_capacity(VERDICT_BYTES)
                .weigher(|k: &String, v: &Verdict| weigh_verdict(k, v))
                .time_to_live(recheck)
                .build(),
            provers: moka::future::Cache::builder()
                .max_capacity(VERDICT_BYTES)
                .weigher(|k: &String, _: &Digest| u32::try_from(k.len() + 160).unwrap_or(u32::MAX))
                .build(),
            manifests: moka::future::Cache::builder()
                .max_capacity(MANIFEST_BYTES)
                .weigher(|k: &String, m: &Arc<ImageManifest>| weigh_manifest(k, m))
                .build(),
        }
    }

    pub(super) async fn get(&self, key: &str) -> Option<Verdict> {
        self.judged.get(key).await
    }

    pub(super) async fn remember(&self, key: String, verdict: &Verdict) {
        if *verdict != Verdict::NotChecked {
            self.judged.insert(key, verdict.clone()).await;
        }
    }

    pub(super) async fn prover(&self, key: &str) -> Option<Digest> {
        self.provers.get(key).await
    }

    pub(super) async fn remember_prover(&self, key: String, signature: &Digest) {
        self.provers.insert(key, signature.clone()).await;
    }

    pub(super) async fn forget(&self, key: &str) {
        self.judged.invalidate(key).await;
    }

    pub(super) async fn manifest(&self, key: &str) -> Option<Arc<ImageManifest>> {
        self.manifests.get(key).await
    }

    pub(super) async fn remember_manifest(&self, key: String, manifest: &ImageManifest) {
        // A walk proves the same artifacts again and again: copy each manifest once.
        if !self.manifests.contains_key(&key) {
            self.manifests.insert(key, Arc::new(manifest.clone())).await;
        }
    }
}

impl std::fmt::Debug for Verdicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} verdicts", self.judged.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_is_remembered_stays_within_its_bytes() {
        let verdicts = Verdicts::new(RECHECK);
        let reason = "x".repeat(4096);
        for i in 0..8_000 {
            let verdict = Verdict::Invalid {
                reason: reason.clone(),
            };
            verdicts
                .remember(format!("repo@sha256:{i:064}"), &verdict)
                .await;
        }
        verdicts.judged.run_pending_tasks().await;
        assert!(
            verdicts.judged.weighted_size() <= VERDICT_BYTES,
            "{} bytes remembered",
            verdicts.judged.weighted_size()
        );
        // Manifests of proved artifacts are bounded by their size, not their number.
        let mut manifest: ImageManifest = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "config": { "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": crate::digest::sha256(b"{}").to_string(), "size": 2 },
            "layers": []
        }))
        .unwrap();
        manifest
            .annotations
            .insert("a".into(), "y".repeat(64 * 1024));
        for i in 0..2_000 {
            verdicts
                .remember_manifest(format!("repo@sha256:{i:064}"), &manifest)
                .await;
        }
        verdicts.manifests.run_pending_tasks().await;
        assert!(verdicts.manifests.weighted_size() <= MANIFEST_BYTES);
        // Nothing is remembered for the unverified mode, which checks nothing.
        verdicts
            .remember("repo@sha256:none".into(), &Verdict::NotChecked)
            .await;
        assert_eq!(verdicts.get("repo@sha256:none").await, None);
    }
}
