//! Helpers for tests that run `refcat publish` and inspect what it wrote.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use refcat::artifact::annotations::FORMAT;
use refcat::catalog::platforms::{platform_manifests, PlatformManifest};
use refcat::reference::{Reference, RepositoryName, Target};
use refcat::registry::Client;
use serde_json::Value;

use super::{oras, refcat, Registry};

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The referrers `oras discover` lists on `reference`, by refcat format name.
pub fn listed(reference: &str) -> BTreeMap<String, Vec<Value>> {
    let out = oras(&["discover", "--format", "json", "--depth", "1", reference]);
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut by_format: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in tree["referrers"].as_array().unwrap() {
        if let Some(format) = r["annotations"][FORMAT].as_str() {
            by_format
                .entry(format.to_string())
                .or_default()
                .push(r.clone());
        }
    }
    by_format
}

pub async fn subjects(client: &Client, reference: &str) -> Vec<PlatformManifest> {
    let reference: Reference = reference.parse().unwrap();
    platform_manifests(client, &reference, None).await.unwrap()
}

/// The linux/amd64 manifest among `platforms`.
pub fn amd64(platforms: &[PlatformManifest]) -> &PlatformManifest {
    platforms
        .iter()
        .find(|p| p.platform.to_string() == "linux/amd64")
        .expect("the image has linux/amd64")
}

pub fn tokio_run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Runs a command off the async runtime (a fault proxy on it must keep serving).
pub async fn output(mut cmd: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Every artifact in refcat's formats listed on `subject`, signed or not, as a
/// registry client finds them.
pub async fn candidates(
    client: &Client,
    repository: &refcat::reference::RepositoryName,
    subject: &refcat::digest::Digest,
) -> refcat::trust::Candidates {
    let unchecked = refcat::trust::Trust::show_unverified();
    let formats = refcat::artifact::Format::ALL;
    refcat::trust::Candidates::read(client, repository, subject, &formats, &unchecked)
        .await
        .unwrap()
}

/// What refcat finds listed for each platform manifest of `reference` (`host/repo:tag`).
pub async fn existing_per_platform(
    client: &Client,
    reference: &str,
) -> Vec<refcat::trust::Candidates> {
    let repository = reference.parse::<Reference>().unwrap().repository;
    let mut all = Vec::new();
    for subject in subjects(client, reference).await {
        all.push(candidates(client, &repository, &subject.descriptor.digest).await);
    }
    all
}

/// The releases in the release log of `repository`, read verified with the public key
/// in `keys` (a log it does not verify lists none).
pub async fn recorded_releases(
    client: &Client,
    repository: &refcat::reference::RepositoryName,
    keys: &Path,
) -> Vec<refcat::records::release_log::Recorded> {
    let key = std::fs::read_to_string(keys.join("refcat.pub")).unwrap();
    let own = refcat::trust::Trust::own(refcat::sign::PublicKey::from_pem(&key).unwrap());
    let log = refcat::records::release_log::read(client, repository, &own)
        .await
        .unwrap();
    match log {
        Some(refcat::trust::Shown::Verified(log)) => log.get().releases(),
        _ => Vec::new(),
    }
}

/// Every listed refcat artifact of `image` has all its blobs, one of each format is
/// listed per platform manifest, and all verify.
pub async fn check_recovered(registry: &Registry, keys: &Path, image: &str) {
    let client = registry.client();
    let reference = format!("{}/{image}", registry.host);
    let repository: Reference = reference.parse().unwrap();
    for existing in existing_per_platform(&client, &reference).await {
        for list in refcat::artifact::Format::ALL.map(|f| existing.of(f)) {
            assert_eq!(
                list.len(),
                1,
                "{image}: exactly one of each format: {existing:?}"
            );
            let m = list[0].manifest();
            for blob in std::iter::once(&m.config).chain(&m.layers) {
                assert!(
                    client
                        .blob_exists(&repository.repository, &blob.digest)
                        .await
                        .unwrap(),
                    "{image}: artifact {} lacks blob {}",
                    list[0].digest(),
                    blob.digest
                );
            }
        }
    }
    let mut verify = refcat();
    verify
        .args(["verify", "--key"])
        .arg(keys.join("refcat.pub"))
        .arg(&reference);
    let out = output(verify).await;
    assert_eq!(
        code(&out),
        0,
        "{image}: refcat verify: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Pushes, under tag `to`, a copy of the index at tag `from` with a BuildKit-style
/// attestation manifest for its first platform manifest, whose one layer is
/// `statement`. Returns the attested platform manifest's digest.
pub async fn push_attested_index(
    client: &Client,
    repository: &RepositoryName,
    from: &str,
    to: &str,
    statement: &Value,
) -> String {
    let attestation = refcat::artifact::ArtifactBuilder::new("application/vnd.in-toto+json")
        .layer(refcat::artifact::ArtifactLayer {
            media_type: "application/vnd.in-toto+json".into(),
            data: serde_json::to_vec(statement).unwrap().into(),
            title: "provenance.json".into(),
        })
        .build();
    client
        .push_artifact(repository, &attestation)
        .await
        .unwrap();
    let fetched = client
        .get_manifest(repository, &Target::Tag(from.parse().unwrap()))
        .await
        .unwrap();
    let mut index: Value = serde_json::from_slice(&fetched.bytes).unwrap();
    let attested = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": attestation.digest.to_string(),
            "size": attestation.manifest.len(),
            "platform": { "os": "unknown", "architecture": "unknown" },
            "annotations": {
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": attested,
            },
        }));
    client
        .put_manifest(
            repository,
            &Target::Tag(to.parse().unwrap()),
            &fetched.media_type,
            serde_json::to_vec(&index).unwrap().into(),
        )
        .await
        .unwrap();
    attested
}
