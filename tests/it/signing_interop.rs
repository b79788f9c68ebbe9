//! refcat's signatures against the real cosign CLI (v3.1.2): key files both ways, and
//! `cosign verify --key` on what refcat signs, in both layouts, on both registry kinds;
//! and refcat's verification agreeing with cosign's on what cosign signs.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{push_fixture, tool, Kind, Registry};
use bytes::Bytes;
use refcat::digest::Digest;
use refcat::oci::Descriptor;
use refcat::reference::{RepositoryName, Target};
use refcat::registry::Client;
use refcat::secret::Secret;
use refcat::sign::{bundle, legacy, KeyPair, PublicKey};

const PASSWORD: &str = common::KEY_PASSWORD;

fn cosign(dir: &Path, args: &[&str]) -> Output {
    Command::new(tool("cosign"))
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("COSIGN_YES", "true")
        .args(args)
        .output()
        .unwrap()
}

/// `cosign verify` with a key file in `dir`.
fn cosign_verify(dir: &Path, key: &str, reference: &str) -> (bool, String) {
    common::cosign_verify(&dir.join(key), reference)
}

async fn push_legacy(
    client: &Client,
    repository: &RepositoryName,
    key: &KeyPair,
    subject: &Digest,
) {
    let docker_reference = format!("{}/{repository}", client.registry());
    let (layer, payload) = legacy::layer(key, &docker_reference, subject);
    let (manifest, config) = legacy::manifest(std::slice::from_ref(&layer));
    for blob in [payload, config] {
        client
            .push_blob_if_missing(repository, &refcat::digest::sha256(&blob), &blob)
            .await
            .unwrap();
    }
    client
        .put_manifest(
            repository,
            &Target::Tag(legacy::signature_tag(subject).unwrap()),
            refcat::media_types::OCI_MANIFEST,
            manifest,
        )
        .await
        .unwrap();
}

#[test]
fn key_files_work_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let out = cosign(dir.path(), &["generate-key-pair"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cosign_key = std::fs::read_to_string(dir.path().join("cosign.key")).unwrap();
    let cosign_pub = std::fs::read_to_string(dir.path().join("cosign.pub")).unwrap();
    let loaded = KeyPair::from_encrypted_pem(&cosign_key, &Secret::new(PASSWORD)).unwrap();
    assert_eq!(
        loaded.public_key(),
        PublicKey::from_pem(&cosign_pub).unwrap()
    );
    assert!(KeyPair::from_encrypted_pem(&cosign_key, &Secret::new("wrong")).is_err());

    // cosign reads refcat's key file: it derives the same public key from it.
    let pair = common::write_keys(dir.path());
    let out = cosign(dir.path(), &["public-key", "--key", "refcat.key"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let derived = PublicKey::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(derived, pair.public_key());
}

async fn cosign_accepts_refcat_signatures(kind: Kind) {
    let registry = Registry::start(kind);
    let client = registry.client();
    let dir = tempfile::tempdir().unwrap();
    let key = common::write_keys(dir.path());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    assert!(cosign(&other, &["generate-key-pair"]).status.success());

    // The bundle layout on the Debian image, the legacy layout on the app image.
    let debian = push_fixture(&client, "debian").await;
    let app = push_fixture(&client, "lang").await;
    let signed_bundle = bundle::artifact(&key, &debian.top.descriptor(), "2026-11-22T00:00:00Z");
    client
        .push_artifact(&debian.repository, &signed_bundle)
        .await
        .unwrap();
    push_legacy(&client, &app.repository, &key, &app.top.digest).await;

    for (repo, digest) in [
        (&debian.repository, &debian.top.digest),
        (&app.repository, &app.top.digest),
    ] {
        let reference = format!("{}/{repo}@{digest}", registry.host);
        let (ok, stderr) = cosign_verify(dir.path(), "refcat.pub", &reference);
        assert!(
            ok,
            "{kind:?}: cosign rejected refcat's signature on {reference}: {stderr}"
        );
        let (ok, _) = cosign_verify(dir.path(), "other/cosign.pub", &reference);
        assert!(
            !ok,
            "{kind:?}: cosign accepted {reference} with the wrong key"
        );
    }

    // A bundle signed for another digest, attached to a fresh image, is refused.
    let alpine = push_fixture(&client, "alpine").await;
    let stolen = bundle::sign(&key, &debian.top.digest);
    let forged = refcat::artifact::ArtifactBuilder::new(refcat::media_types::SIGSTORE_BUNDLE_V03)
        .subject(alpine.top.descriptor())
        .layer(refcat::artifact::ArtifactLayer {
            media_type: refcat::media_types::SIGSTORE_BUNDLE_V03.into(),
            data: Bytes::from(stolen.clone()),
            title: "signature.sigstore.json".into(),
        })
        .annotation("dev.sigstore.bundle.content", "dsse-envelope")
        .annotation(
            "dev.sigstore.bundle.predicateType",
            bundle::COSIGN_SIGN_PREDICATE,
        )
        .build();
    client
        .push_artifact(&alpine.repository, &forged)
        .await
        .unwrap();
    let reference = format!(
        "{}/{}@{}",
        registry.host, alpine.repository, alpine.top.digest
    );
    let (ok, _) = cosign_verify(dir.path(), "refcat.pub", &reference);
    assert!(
        !ok,
        "{kind:?}: cosign accepted a bundle made for another digest"
    );
    assert!(bundle::verify(&stolen, &key.public_key(), &alpine.top.digest).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosign_accepts_refcat_signatures_on_zot() {
    cosign_accepts_refcat_signatures(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosign_accepts_refcat_signatures_on_distribution() {
    cosign_accepts_refcat_signatures(Kind::Distribution).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refcat_accepts_cosign_signatures_in_both_layouts() {
    let registry = Registry::start(Kind::Zot);
    let client = registry.client();
    let dir = tempfile::tempdir().unwrap();
    assert!(cosign(dir.path(), &["generate-key-pair"]).status.success());
    let public =
        PublicKey::from_pem(&std::fs::read_to_string(dir.path().join("cosign.pub")).unwrap())
            .unwrap();
    let image = push_fixture(&client, "debian").await;
    let reference = format!(
        "{}/{}@{}",
        registry.host, image.repository, image.top.digest
    );
    for extra in [&[][..], &["--new-bundle-format=false"][..]] {
        let mut args = vec![
            "sign",
            "--key",
            "cosign.key",
            "--use-signing-config=false",
            "--tlog-upload=false",
            "--allow-http-registry",
        ];
        args.extend_from_slice(extra);
        args.push(&reference);
        let out = cosign(dir.path(), &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The bundle referrer.
    let referrers = client
        .referrers(&image.repository, &image.top.digest, None)
        .await
        .unwrap();
    assert_eq!(referrers.len(), 1);
    let m = common::image_manifest(
        &client,
        &image.repository,
        Target::Digest(referrers[0].digest.clone()),
    )
    .await;
    let data = client
        .get_blob(&image.repository, &m.layers[0].digest, None)
        .await
        .unwrap();
    bundle::verify(&data, &public, &image.top.digest).unwrap();
    // The legacy tag.
    let m = common::image_manifest(
        &client,
        &image.repository,
        Target::Tag(legacy::signature_tag(&image.top.digest).unwrap()),
    )
    .await;
    let layer: &Descriptor = &m.layers[0];
    let payload = client
        .get_blob(&image.repository, &layer.digest, None)
        .await
        .unwrap();
    legacy::verify(layer, &payload, &public, &image.top.digest).unwrap();
    assert!(legacy::verify(
        layer,
        &payload,
        &KeyPair::generate().public_key(),
        &image.top.digest
    )
    .is_err());
}
