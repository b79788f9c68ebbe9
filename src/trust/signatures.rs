//! Checking an artifact's signatures in the registry: its Sigstore bundle referrers
//! first, then the legacy `.sig` tag, in the order `cosign verify` searches them.
//!
//! Nothing a listing or a tag says is taken on trust. A bundle counts only when its
//! manifest, read by digest, names the signed artifact as its `subject` and its bundle
//! verifies for that digest; a `.sig` manifest only when its layers are signatures of
//! that digest. The manifests that pass are the artifact's own signatures: the only
//! ones refcat may ever delete with it.

use crate::artifact::annotations::BUNDLE_CONTENT;
use crate::digest::Digest;
use crate::media_types::{COSIGN_SIMPLE_SIGNING, EMPTY_JSON, SIGSTORE_BUNDLE_V03};
use crate::oci::{Descriptor, ImageManifest, Manifest};
use crate::reference::{RepositoryName, Target};
use crate::registry::{Client, RegistryError};
use crate::sign::{bundle, legacy, PublicKey, SignError};

use super::Verdict;

/// Signatures are small; anything bigger is not one.
const MAX_SIGNATURE_BYTES: u64 = 1024 * 1024;

/// Bundle referrers read per artifact, the one that proved it before first. Anyone with
/// push access can attach thousands; past this many, the rest are not read.
const MAX_BUNDLES: usize = 64;

/// Layers of a legacy `.sig` manifest that are checked: cosign appends one per signer.
const MAX_LEGACY_LAYERS: usize = 16;

/// A manifest that holds a signature of the checked artifact with a trusted key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SignatureManifest {
    /// Its digest.
    pub digest: Digest,
    /// `bundle` or `legacy`.
    pub format: &'static str,
}

/// What a check found.
#[derive(Debug)]
pub(super) struct Checked {
    pub verdict: Verdict,
    /// The signature manifests that verified and hold nothing else (only the first one
    /// unless `every`).
    pub proving: Vec<SignatureManifest>,
}

fn is_bundle(d: &Descriptor) -> bool {
    d.artifact_type.as_deref() == Some(SIGSTORE_BUNDLE_V03)
        || d.annotations.contains_key(BUNDLE_CONTENT)
}

/// The image manifest at `target`; `None` when it is gone or not an image manifest.
async fn image_manifest(
    client: &Client,
    repository: &RepositoryName,
    target: &Target,
) -> Result<Option<(Digest, ImageManifest)>, RegistryError> {
    match client.get_manifest(repository, target).await {
        Ok(fetched) => match fetched.manifest {
            Manifest::Image(m) => Ok(Some((fetched.digest, m))),
            Manifest::Index(_) => Ok(None),
        },
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// A signature blob, bounded by its descriptor; content that does not match its digest
/// was tampered with, which makes the signature invalid rather than the check impossible.
async fn fetch(
    client: &Client,
    repository: &RepositoryName,
    layer: &Descriptor,
) -> Result<Result<bytes::Bytes, String>, RegistryError> {
    if layer.size > MAX_SIGNATURE_BYTES {
        return Ok(Err(format!(
            "a signature layer of {} bytes (at most {MAX_SIGNATURE_BYTES})",
            layer.size
        )));
    }
    match client
        .get_blob(repository, &layer.digest, Some(layer.size))
        .await
    {
        Ok(data) => Ok(Ok(data)),
        Err(e @ RegistryError::Digest { .. }) => Ok(Err(e.to_string())),
        Err(e) if e.is_not_found() => Ok(Err(format!("signature blob {} is gone", layer.digest))),
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

/// Checks the signatures of the manifest `signed` against `keys`. With `every`, every
/// verifying signature manifest is collected (what a delete of `signed` may take with
/// it); otherwise the check stops at the first.
pub(super) async fn check(
    client: &Client,
    repository: &RepositoryName,
    signed: &Digest,
    keys: &[PublicKey],
    every: bool,
    proved_before: Option<&Digest>,
) -> Result<Checked, RegistryError> {
    let mut failure = None;
    let mut proving = Vec::new();
    let mut verified_legacy = None;
    let listed = client.referrers(repository, signed, None).await?;
    let mut bundles: Vec<&Descriptor> = listed.iter().filter(|d| is_bundle(d)).collect();
    // The listing's order is anyone's to decide: the bundle that proved the artifact
    // before is read first, so look-alike bundles cannot push it out of reach.
    bundles.sort_by_key(|d| Some(&d.digest) != proved_before);
    if bundles.len() > MAX_BUNDLES {
        tracing::warn!(%repository, artifact = %signed, listed = bundles.len(),
            "more signature referrers than any signer writes; only the first {MAX_BUNDLES} are read");
    }
    for candidate in bundles.into_iter().take(MAX_BUNDLES) {
        let target = Target::Digest(candidate.digest.clone());
        // A listed bundle that is gone is no signature here.
        let Some((digest, manifest)) = image_manifest(client, repository, &target).await? else {
            continue;
        };
        if manifest.subject.as_ref().map(|s| &s.digest) != Some(signed) {
            failure = Some("a listed signature whose manifest is about another artifact".into());
            continue;
        }
        // A bundle referrer as cosign writes one: the bundle, and nothing else.
        let [layer] = manifest.layers.as_slice() else {
            failure = Some("a listed signature manifest that holds more than a bundle".into());
            continue;
        };
        if manifest.artifact_type.as_deref() != Some(SIGSTORE_BUNDLE_V03)
            || manifest.config.media_type != EMPTY_JSON
            || layer.media_type != SIGSTORE_BUNDLE_V03
        {
            failure = Some("a listed signature manifest that is not a Sigstore bundle".into());
            continue;
        }
        let verified = match fetch(client, repository, layer).await? {
            Ok(data) => match any_key(keys, |k| bundle::verify(&data, k, signed)) {
                Ok(()) => true,
                Err(reason) => {
                    failure = Some(reason);
                    false
                }
            },
            Err(reason) => {
                failure = Some(reason);
                false
            }
        };
        if verified {
            proving.push(SignatureManifest {
                digest,
                format: "bundle",
            });
            if !every {
                break;
            }
        }
    }
    if proving.is_empty() || every {
        match legacy_signature(client, repository, signed, keys).await? {
            Some(Ok((manifest, deletable))) => {
                verified_legacy = Some(manifest.format);
                if deletable {
                    proving.push(manifest);
                } else {
                    tracing::warn!(%repository, artifact = %signed,
                        "its .sig tag points at a manifest that holds more than its signatures; never deleted with it");
                }
            }
            Some(Err(reason)) => failure = Some(reason),
            None => {}
        }
    }
    let format = proving.first().map(|p| p.format).or(verified_legacy);
    let verdict = match (format, failure) {
        (Some(format), _) => Verdict::Verified { format },
        (None, Some(reason)) => Verdict::Invalid { reason },
        (None, None) => Verdict::Unsigned,
    };
    Ok(Checked { verdict, proving })
}

/// What cosign's `.sig` tag of `signed` points at: `Ok` when a layer of it is a
/// signature of `signed` with one of `keys` (as `cosign verify` accepts), with whether
/// the whole manifest is such signatures and nothing else (only then may it go with
/// `signed`; an image, or anything else a pusher tagged there, is never deleted);
/// `None` when there is no such tag.
async fn legacy_signature(
    client: &Client,
    repository: &RepositoryName,
    signed: &Digest,
    keys: &[PublicKey],
) -> Result<Option<Result<(SignatureManifest, bool), String>>, RegistryError> {
    // A digest cosign's `.sig` tag cannot name (sha512) has no legacy signature.
    let Ok(tag) = legacy::signature_tag(signed) else {
        return Ok(None);
    };
    let Some((digest, manifest)) = image_manifest(client, repository, &Target::Tag(tag)).await?
    else {
        return Ok(None);
    };
    if manifest.layers.len() > MAX_LEGACY_LAYERS {
        return Ok(Some(Err(format!(
            "the .sig manifest holds {} layers, more than any signers write",
            manifest.layers.len()
        ))));
    }
    let (mut verified, mut only_signatures) = (false, !manifest.layers.is_empty());
    let mut failure = "the .sig manifest holds no signature".to_string();
    for layer in &manifest.layers {
        if layer.media_type != COSIGN_SIMPLE_SIGNING {
            only_signatures = false;
            continue;
        }
        let checked = match fetch(client, repository, layer).await? {
            Ok(payload) => any_key(keys, |k| legacy::verify(layer, &payload, k, signed)),
            Err(reason) => Err(reason),
        };
        match checked {
            Ok(()) => verified = true,
            Err(reason) => {
                only_signatures = false;
                failure = reason;
            }
        }
    }
    Ok(Some(if verified {
        let manifest = SignatureManifest {
            digest,
            format: "legacy",
        };
        Ok((manifest, only_signatures))
    } else {
        Err(failure)
    }))
}
