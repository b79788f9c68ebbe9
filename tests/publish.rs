//! `refcat publish` end to end, with the real syft, grype (fixture DB), oras and cosign,
//! on a registry with the referrers API and on docker-registry 2.8.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use common::{cosign_verify, oras, push_fixture, refcat, refcat_publish, Kind, Registry};
use refcat::artifact::annotations::{FORMAT, GRYPE_DB_BUILT, PLATFORM, SCANNER, SCANNER_VERSION};
use refcat::catalog::platforms::{platform_manifests, PlatformManifest};
use refcat::reference::{Reference, Target};
use refcat::registry::Client;
use serde_json::Value;

const FIXTURES: [(&str, &str); 3] = [
    ("debian", "fixtures/debian:12"),
    ("alpine", "fixtures/alpine:3.19"),
    ("lang", "fixtures/app:1.0.0"),
];

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The referrers `oras discover` lists on `reference`, by refcat format name.
fn listed(reference: &str) -> BTreeMap<String, Vec<Value>> {
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

async fn subjects(client: &Client, reference: &str) -> Vec<PlatformManifest> {
    let reference: Reference = reference.parse().unwrap();
    platform_manifests(client, &reference, None).await.unwrap()
}

/// Checks every refcat artifact on every platform manifest of `image`: exactly one of
/// each format, its artifactType and annotations, and cosign and refcat both verifying
/// its signature with the right key and refusing it with another.
async fn check_complete(registry: &Registry, keys: &Path, other: &Path, image: &str) {
    let client = registry.client();
    let reference = format!("{}/{image}", registry.host);
    for subject in subjects(&client, &reference).await {
        let at = format!(
            "{}/{}@{}",
            registry.host,
            image.split(':').next().unwrap(),
            subject.descriptor.digest
        );
        let found = listed(&at);
        for (format, artifact_type, scanner) in [
            ("syft-json", "application/vnd.syft+json", "syft"),
            ("spdx-json", "application/spdx+json", "syft"),
            ("grype-json", "application/vnd.grype+json", "grype"),
        ] {
            let list = found.get(format).map(Vec::as_slice).unwrap_or_default();
            assert_eq!(list.len(), 1, "{at}: one {format} artifact, found {list:?}");
            let artifact = &list[0];
            assert_eq!(
                artifact["artifactType"],
                registry.kind.listed_artifact_type(artifact_type),
                "{at} {format}"
            );
            let annotations = &artifact["annotations"];
            assert_eq!(annotations[SCANNER], scanner);
            assert!(annotations[SCANNER_VERSION]
                .as_str()
                .unwrap()
                .starts_with(if scanner == "syft" { "1.51" } else { "0.116" }));
            assert_eq!(annotations[PLATFORM], subject.platform.to_string());
            assert!(annotations["org.opencontainers.image.created"].is_string());
            if format == "grype-json" {
                assert_eq!(annotations[GRYPE_DB_BUILT], "2026-11-01T00:00:00Z");
            }
            let signed = format!(
                "{}/{}@{}",
                registry.host,
                image.split(':').next().unwrap(),
                artifact["digest"].as_str().unwrap()
            );
            let (ok, why) = cosign_verify(&keys.join("refcat.pub"), &signed);
            assert!(ok, "cosign verify {signed}: {why}");
            let (ok, _) = cosign_verify(&other.join("refcat.pub"), &signed);
            assert!(!ok, "cosign accepted {signed} with another key");
        }
    }
    let out = refcat()
        .args(["verify", "--output", "json", "--key"])
        .arg(keys.join("refcat.pub"))
        .arg(&reference)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "refcat verify {reference}: {}", stderr(&out));
    let out = refcat()
        .args(["verify", "--key"])
        .arg(other.join("refcat.pub"))
        .arg(&reference)
        .output()
        .unwrap();
    assert_eq!(code(&out), 7, "refcat verify with another key must fail");
}

async fn publish_every_fixture(kind: Kind, signature_format: &str) {
    let registry = Registry::start(kind);
    let client = registry.client();
    let keys = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    common::write_keys(keys.path());
    common::write_keys(other.path());
    let mut refs = Vec::new();
    for (fixture, image) in FIXTURES {
        push_fixture(&client, fixture).await;
        refs.push(format!("{}/{image}", registry.host));
    }
    let out = refcat_publish(keys.path())
        .args(["--signature-format", signature_format])
        .args(&refs)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "publish: {}", stderr(&out));
    for (_, image) in FIXTURES {
        check_complete(&registry, keys.path(), other.path(), image).await;
    }

    // The stored Grype results are grype's own output: the expected matches for Debian.
    let debian = format!("{}/fixtures/debian:12", registry.host);
    let subject = &subjects(&client, &debian).await[0];
    let grype = &listed(&format!(
        "{}/fixtures/debian@{}",
        registry.host, subject.descriptor.digest
    ))["grype-json"][0];
    let pulled = tempfile::tempdir().unwrap();
    oras(&[
        "pull",
        "-o",
        pulled.path().to_str().unwrap(),
        &format!(
            "{}/fixtures/debian@{}",
            registry.host,
            grype["digest"].as_str().unwrap()
        ),
    ]);
    let results: Value = serde_json::from_slice(
        &std::fs::read(pulled.path().join("vulnerabilities.grype.json")).unwrap(),
    )
    .unwrap();
    let mut ids: Vec<&str> = results["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["vulnerability"]["id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids,
        [
            "CVE-2005-2541",
            "CVE-2023-38545",
            "CVE-2023-4911",
            "CVE-2023-5363"
        ]
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(pulled.path().join("refcat-record.json")).unwrap())
            .unwrap();
    assert_eq!(record["$type"], "dev.refcat.vulnerabilityRecord");
    assert_eq!(
        grype["annotations"]["dev.refcat.vulnerabilities.high"],
        record["summary"]["high"].to_string()
    );
    assert_eq!(
        record["vulnerabilities"].as_array().unwrap().len(),
        results["matches"].as_array().unwrap().len()
    );

    // A second run finds everything in place.
    let out = refcat_publish(keys.path())
        .args(["--signature-format", signature_format])
        .args(&refs)
        .output()
        .unwrap();
    assert_eq!(code(&out), 10, "nothing to do: {}", stderr(&out));
}

#[test]
fn every_fixture_gets_a_signed_set_with_the_referrers_api_bundle() {
    tokio_run(publish_every_fixture(Kind::ReferrersApi, "bundle"));
}

#[test]
fn every_fixture_gets_a_signed_set_with_the_referrers_api_legacy() {
    tokio_run(publish_every_fixture(Kind::ReferrersApi, "legacy"));
}

#[test]
fn every_fixture_gets_a_signed_set_on_distribution_bundle() {
    tokio_run(publish_every_fixture(Kind::Distribution, "bundle"));
}

#[test]
fn every_fixture_gets_a_signed_set_on_distribution_legacy() {
    tokio_run(publish_every_fixture(Kind::Distribution, "legacy"));
}

fn tokio_run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
