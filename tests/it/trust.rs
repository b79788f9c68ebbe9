//! Only refcat's own, verified artifacts count. Other tools' SBOMs, forged results, a set
//! signed with another key and a rewritten tag-schema listing never change what refcat
//! publishes, prunes or shows.

use std::path::Path;

use refcat::artifact::annotations::{CREATED, FORMAT, GRYPE_DB_BUILT, VULNERABILITIES_PREFIX};
use refcat::artifact::Format;
use refcat::artifact::{ArtifactBuilder, ArtifactLayer};
use refcat::catalog::platforms::PlatformManifest;
use refcat::media_types::{GRYPE_JSON, OCI_INDEX, SPDX_JSON, SYFT_JSON};
use refcat::publish::Existing;
use refcat::reference::{RepositoryName, Target};
use refcat::registry::Client;
use refcat::sign::PublicKey;
use refcat::trust::Trust;
use refcat::web::AppState;
use serde_json::Value;

use crate::common::published::{amd64, code, output, stderr, subjects};
use crate::common::served::start_api;
use crate::common::{
    oras_attach, push_fixture, refcat, refcat_publish, write_keys, Kind, Registry,
};

const ALPINE: &str = "fixtures/alpine";

fn alpine() -> RepositoryName {
    ALPINE.parse().unwrap()
}

/// Pushes alpine:3.19; its `registry/fixtures/alpine:3.19` and its platform manifests.
async fn pushed_alpine(registry: &Registry) -> (String, Vec<PlatformManifest>) {
    push_fixture(&registry.client(), "alpine").await;
    let reference = format!("{}/{ALPINE}:3.19", registry.host);
    let platforms = subjects(&registry.client(), &reference).await;
    (reference, platforms)
}

/// zot with alpine:3.19 pushed, and a fresh key pair: the registry, the keys,
/// `registry/fixtures/alpine:3.19` and its platform manifests.
async fn alpine_on_zot() -> (Registry, tempfile::TempDir, String, Vec<PlatformManifest>) {
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let (reference, platforms) = pushed_alpine(&registry).await;
    (registry, keys, reference, platforms)
}

fn public_key(keys: &Path) -> PublicKey {
    PublicKey::from_pem(&std::fs::read_to_string(keys.join("refcat.pub")).unwrap()).unwrap()
}

/// refcat's newest SBOMs and every Grype artifact on `subject`, by the key in `keys`.
async fn proven(client: &Client, subject: &PlatformManifest, keys: &Path) -> Existing {
    let trust = Trust::own(public_key(keys));
    Existing::owned(
        client,
        &alpine(),
        &subject.descriptor.digest,
        &trust,
        &Format::ALL,
        true,
    )
    .await
    .unwrap()
}

/// `refcat publish` of alpine's linux/amd64 with the key in `keys`, plus `args`.
async fn publish(keys: &Path, reference: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = refcat_publish(keys);
    cmd.args(["--platform", "linux/amd64", "--output", "json"])
        .args(args)
        .arg(reference);
    output(cmd).await
}

/// `refcat verify` of `reference` with the public key in `keys`.
async fn verify(keys: &Path, reference: &str) -> std::process::Output {
    let mut cmd = refcat();
    cmd.args(["verify", "--platform", "linux/amd64", "--key"])
        .arg(keys.join("refcat.pub"))
        .arg(reference);
    output(cmd).await
}

/// What `refcat backfill --dry-run` with the key in `keys` would queue, one line each.
async fn backfill_dry_run(keys: &Path, host: &str) -> String {
    let mut walk = crate::common::refcat_publishing("backfill", keys);
    walk.args(["--dry-run", host]);
    let out = output(walk).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// What one view of a catalog that trusts `keys` (or nothing) answers.
async fn view(registry: &Registry, keys: Option<&Path>, path: &str) -> Value {
    let trust = match keys {
        Some(keys) => Trust::checking(vec![public_key(keys)], false).unwrap(),
        None => Trust::show_unverified(),
    };
    let base = start_api(AppState::new(registry.client(), trust)).await;
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// The tags view's entry for linux/amd64 of 3.19.
fn tagged_amd64(tags: &Value) -> &Value {
    let entry = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "3.19")
        .expect("3.19 is listed");
    entry["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == "linux/amd64")
        .expect("linux/amd64 is listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_tools_sboms_and_scans_are_left_alone() {
    let (registry, keys, reference, platforms) = alpine_on_zot().await;
    let subject = amd64(&platforms);
    let at = format!("{}/{ALPINE}@{}", registry.host, subject.descriptor.digest);
    // As a CI job or BuildKit would attach them: same artifactTypes, not refcat's.
    let foreign: Vec<String> = [SYFT_JSON, SPDX_JSON, GRYPE_JSON]
        .iter()
        .map(|t| oras_attach(&at, t))
        .collect();

    let first = publish(keys.path(), &reference, &["--keep", "1"]).await;
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let report: Value = serde_json::from_slice(&first.stdout).unwrap();
    let published: Vec<&str> = report[0]["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["format"].as_str().unwrap())
        .collect();
    assert_eq!(published, ["syft-json", "spdx-json", "grype-json"]);
    // A second scan with --keep 1 prunes refcat's older result, never another tool's.
    let again = publish(keys.path(), &reference, &["--keep", "1", "--force"]).await;
    assert_eq!(code(&again), 0, "{}", stderr(&again));

    let client = registry.client();
    let own = proven(&client, subject, keys.path()).await;
    // The newest of each format is refcat's; --keep 1 left one Grype result.
    assert_eq!([own.syft.len(), own.spdx.len(), own.grype.len()], [1, 1, 1]);
    for digest in &foreign {
        let target = Target::Digest(digest.parse().unwrap());
        let head = client.head_manifest(&alpine(), &target).await.unwrap();
        assert!(
            head.is_some(),
            "the foreign artifact {digest} is still there"
        );
    }
    let verified = verify(keys.path(), &reference).await;
    assert_eq!(code(&verified), 0, "{}", stderr(&verified));
    assert!(stderr(&verified).contains("left out 3 artifact(s)"));
}

/// A Grype artifact that claims to be refcat's, unsigned, with a DB built in 2099, a
/// later `created` than any real one, and no matches.
fn forged_grype(subject: &PlatformManifest) -> refcat::artifact::BuiltArtifact {
    ArtifactBuilder::new(GRYPE_JSON)
        .subject(subject.descriptor.clone())
        .annotation(CREATED, "2099-01-01T00:00:00Z")
        .annotation(FORMAT, "grype-json")
        .annotation(GRYPE_DB_BUILT, "2099-01-01T00:00:00Z")
        .annotation(format!("{VULNERABILITIES_PREFIX}high"), "0")
        .layer(ArtifactLayer {
            media_type: GRYPE_JSON.into(),
            data: bytes::Bytes::from_static(br#"{"matches":[]}"#),
            title: "vulnerabilities.grype.json".into(),
        })
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_result_from_a_future_db_does_not_stop_the_scan() {
    let (registry, keys, reference, platforms) = alpine_on_zot().await;
    let subject = amd64(&platforms);
    let forged = forged_grype(subject);
    registry
        .client()
        .push_artifact(&alpine(), &forged)
        .await
        .unwrap();

    let out = publish(keys.path(), &reference, &[]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let own = proven(&registry.client(), subject, keys.path()).await;
    assert_eq!(own.grype.len(), 1, "refcat scanned despite the forgery");
    assert_eq!(
        own.grype[0].get().annotation(GRYPE_DB_BUILT),
        Some("2026-11-01T00:00:00Z")
    );

    // The catalog shows refcat's signed result, not the newer forgery.
    let path = format!("/v1/images/{ALPINE}/vulnerabilities/3.19");
    let shown = view(&registry, Some(keys.path()), &path).await;
    let amd64 = &shown["platforms"]["linux/amd64"];
    assert_eq!(
        amd64["artifact"],
        own.grype[0].proof().artifact().to_string()
    );
    assert_eq!(amd64["signature"]["verdict"], "verified");
    assert_eq!(amd64["dbBuilt"], "2026-11-01T00:00:00Z");
    assert!(!amd64["matches"].as_array().unwrap().is_empty());

    // It claims to be refcat's, so `refcat verify` names it as unsigned.
    let verified = verify(keys.path(), &reference).await;
    assert_eq!(code(&verified), 7);
    let table = String::from_utf8_lossy(&verified.stdout).into_owned();
    let line = table
        .lines()
        .find(|l| l.contains(&forged.digest.to_string()))
        .unwrap_or_else(|| panic!("the forgery is listed: {table}"));
    assert!(line.contains("UNSIGNED"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_signed_with_another_key_is_not_refcats() {
    let registry = Registry::zot();
    let (keys, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_keys(keys.path());
    write_keys(other.path());
    let (reference, _) = pushed_alpine(&registry).await;
    let every_platform = |keys: &Path| {
        let mut cmd = refcat_publish(keys);
        cmd.arg(&reference);
        output(cmd)
    };
    let by_other = every_platform(other.path()).await;
    assert_eq!(code(&by_other), 0, "{}", stderr(&by_other));

    // A catalog trusting refcat's key shows no numbers from the other key's set, and
    // says why.
    let tags_path = format!("/v1/images/{ALPINE}/tags");
    let tags = view(&registry, Some(keys.path()), &tags_path).await;
    let platform = tagged_amd64(&tags);
    assert_eq!(platform["vulnerabilities"], Value::Null, "{platform}");
    assert_eq!(platform["scannedAt"], Value::Null);
    assert_eq!(platform["signed"], false);
    let directory = view(&registry, Some(keys.path()), "/v1/images").await;
    let summary = &directory["images"][0];
    assert_eq!(summary["name"], ALPINE);
    assert_eq!(summary["vulnerabilities"], Value::Null, "{summary}");
    assert_eq!(summary["signed"], false);
    let path = format!("/v1/images/{ALPINE}/vulnerabilities/3.19");
    let shown = view(&registry, Some(keys.path()), &path).await;
    let amd64 = &shown["platforms"]["linux/amd64"];
    assert_eq!(amd64["signature"]["verdict"], "invalid", "{amd64}");
    // Unknown, not zero: nothing of the other key's set is shown.
    assert_eq!(amd64["matches"], Value::Null, "{amd64}");
    assert_eq!(amd64["totals"], Value::Null, "{amd64}");
    assert_eq!(amd64["dbBuilt"], Value::Null);

    // refcat's own publisher finds nothing of its own, so nothing is complete.
    let mut dry_run = refcat_publish(keys.path());
    dry_run.args(["--platform", "linux/amd64", "--dry-run", &reference]);
    let planned = output(dry_run).await;
    assert_eq!(code(&planned), 0, "{}", stderr(&planned));
    let plan: Value = serde_json::from_slice(&planned.stdout).unwrap();
    assert_eq!(
        plan[0]["missing"],
        serde_json::json!({ "syft": true, "spdx": true, "grype": true })
    );
    let walk = backfill_dry_run(keys.path(), &registry.host).await;
    assert!(
        walk.lines()
            .any(|l| l.starts_with(&format!("{}/{ALPINE}:", registry.host))),
        "backfill --dry-run lists alpine: {walk}"
    );
    let own = every_platform(keys.path()).await;
    assert_eq!(code(&own), 0, "{}", stderr(&own));
    assert_eq!(backfill_dry_run(keys.path(), &registry.host).await, "");

    let tags = view(&registry, Some(keys.path()), &tags_path).await;
    let platform = tagged_amd64(&tags);
    assert_eq!(platform["signed"], true, "{platform}");
    assert!(platform["vulnerabilities"].is_object());
}

/// Rewrites the tag-schema index of `subject` with `change`.
async fn rewrite_listing(client: &Client, subject: &PlatformManifest, change: impl Fn(&mut Value)) {
    let tag = refcat::tag_schema::referrers_tag(&subject.descriptor.digest);
    let target = Target::Tag(tag.unwrap());
    let fetched = client.get_manifest(&alpine(), &target).await.unwrap();
    let mut index: Value = serde_json::from_slice(&fetched.bytes).unwrap();
    change(&mut index);
    let bytes = bytes::Bytes::from(serde_json::to_vec(&index).unwrap());
    client
        .put_manifest(&alpine(), &target, OCI_INDEX, bytes)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_listing_changes_nothing_the_catalog_shows() {
    let registry = Registry::start(Kind::Distribution);
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let (reference, platforms) = pushed_alpine(&registry).await;
    let mut all = refcat_publish(keys.path());
    all.arg(&reference);
    let out = output(all).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (x, y) = (
        amd64(&platforms),
        platforms
            .iter()
            .find(|p| p.platform.to_string() != "linux/amd64")
            .unwrap(),
    );
    let tags_path = format!("/v1/images/{ALPINE}/tags");
    let before = view(&registry, Some(keys.path()), &tags_path).await;
    let counts = tagged_amd64(&before)["vulnerabilities"].clone();
    assert!(
        counts.as_object().unwrap().values().any(|n| n != 0),
        "{counts}"
    );

    // Zero every count on the listing: the signed manifest still says otherwise.
    let client = registry.client();
    rewrite_listing(&client, x, |index| {
        for d in index["manifests"].as_array_mut().unwrap() {
            if let Some(annotations) = d["annotations"].as_object_mut() {
                for (key, value) in annotations.iter_mut() {
                    if key.starts_with(VULNERABILITIES_PREFIX) {
                        *value = "0".into();
                    }
                }
            }
        }
    })
    .await;
    for keys in [Some(keys.path()), None] {
        let after = view(&registry, keys, &tags_path).await;
        assert_eq!(tagged_amd64(&after)["vulnerabilities"], counts);
    }

    // List the other platform's signed artifacts under this one: their subject is not
    // this platform manifest, so this platform shows no result at all.
    let y_listing = {
        let tag = refcat::tag_schema::referrers_tag(&y.descriptor.digest);
        let fetched = client
            .get_manifest(&alpine(), &Target::Tag(tag.unwrap()))
            .await
            .unwrap();
        serde_json::from_slice::<Value>(&fetched.bytes).unwrap()["manifests"].clone()
    };
    rewrite_listing(&client, x, |index| index["manifests"] = y_listing.clone()).await;
    for keys in [Some(keys.path()), None] {
        let after = view(&registry, keys, &tags_path).await;
        let platform = tagged_amd64(&after);
        assert_eq!(platform["vulnerabilities"], Value::Null, "{platform}");
        assert_eq!(platform["sbom"], false);
        let path = format!("/v1/images/{ALPINE}/vulnerabilities/3.19");
        let shown = view(&registry, keys, &path).await;
        assert_eq!(shown["platforms"]["linux/amd64"]["artifact"], Value::Null);
    }
}
