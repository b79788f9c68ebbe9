//! An index that lists one platform manifest many times names one subject: `publish`
//! plans it once, scans it once and attaches one signed set; the tags view lists its
//! platform once, without a referrers call per entry. An index of more distinct
//! platform manifests than refcat handles is refused with the reason.

use axum::http::Method;
use refcat::media_types::OCI_INDEX;
use refcat::reference::{RepositoryName, Target};
use refcat::registry::Client;
use serde_json::{json, Value};

use crate::common::faults::FaultProxy;
use crate::common::published::{code, listed, output, stderr};
use crate::common::serving::ServeProcess;
use crate::common::{counted_syft, push_fixture, refcat_publish, write_keys, Kind, Registry};

/// Times the index lists the one manifest.
const ENTRIES: usize = 1000;

/// Pushes an index listing `entries` as `repository:tag`.
async fn push_index(client: &Client, repository: &RepositoryName, tag: &str, entries: Vec<Value>) {
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries });
    client
        .put_manifest(
            repository,
            &Target::Tag(tag.parse().unwrap()),
            OCI_INDEX,
            serde_json::to_vec(&index).unwrap().into(),
        )
        .await
        .unwrap();
}

/// An index entry for the manifest `bytes` of `media_type`, as linux/amd64.
fn entry(media_type: &str, bytes: &[u8]) -> Value {
    json!({
        "mediaType": media_type,
        "digest": refcat::digest::sha256(bytes).to_string(),
        "size": bytes.len(),
        "platform": { "os": "linux", "architecture": "amd64" },
    })
}

/// Requests the proxy saw that name `hex` (a referrers call or its tag-schema fallback
/// for that digest, or the manifest itself).
fn naming(proxy: &FaultProxy, hex: &str) -> usize {
    proxy
        .all_seen()
        .iter()
        .filter(|s| s.method == Method::GET && s.path.contains(hex))
        .count()
}

async fn one_manifest_listed_many_times_is_one_subject(kind: Kind) {
    let registry = Registry::start(kind);
    let client = registry.client();
    let debian = push_fixture(&client, "debian").await;
    let manifest = &debian.platform_manifests[0];
    let repository: RepositoryName = "fixtures/debian".parse().unwrap();
    let one = entry(&manifest.media_type, &manifest.bytes);
    push_index(&client, &repository, "dup", vec![one; ENTRIES]).await;
    let hex = manifest.digest.digest().to_string();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let proxy = FaultProxy::start(&registry.host).await;
    let through_proxy = format!("{}/fixtures/debian:dup", proxy.host);

    // The plan has one subject, checked with a few requests rather than one per entry.
    let mut plan = refcat_publish(keys.path());
    plan.args(["--dry-run", &through_proxy]);
    let out = output(plan).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let planned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(planned.as_array().unwrap().len(), 1, "subjects planned");
    let checks = naming(&proxy, &hex);
    assert!(checks <= 5, "{checks} requests for the one manifest");

    // One scan, one signed set of each format.
    let scans = tempfile::tempdir().unwrap();
    let mut publish = refcat_publish(keys.path());
    publish
        .env("REFCAT_SYFT", counted_syft(scans.path(), 1))
        .arg(format!("{}/fixtures/debian:dup", registry.host));
    let out = output(publish).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let scanned = std::fs::read_to_string(scans.path().join("scans")).unwrap();
    assert_eq!(scanned.lines().count(), 1, "{scanned}");
    let by_format = listed(&format!(
        "{}/fixtures/debian@{}",
        registry.host, manifest.digest
    ));
    assert_eq!(by_format.len(), 3, "{by_format:?}");
    for (format, artifacts) in &by_format {
        assert_eq!(artifacts.len(), 1, "{format}: {artifacts:?}");
    }

    // The tags view lists the platform once, reading its referrers once or so.
    let served = ServeProcess::start(
        &proxy.host,
        &[
            "--key",
            &keys.path().join("refcat.pub").display().to_string(),
        ],
    )
    .await;
    let before = naming(&proxy, &hex);
    let tags: Value = reqwest::get(format!("{}/v1/images/fixtures/debian/tags", served.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dup = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "dup")
        .unwrap_or_else(|| panic!("no tag dup in {tags}"));
    assert_eq!(dup["platforms"].as_array().unwrap().len(), 1, "{dup}");
    assert_eq!(dup["platforms"][0]["sbom"], true, "{dup}");
    let reads = naming(&proxy, &hex) - before;
    assert!(reads <= 10, "{reads} requests for the one manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_manifest_listed_many_times_is_one_subject_on_zot() {
    one_manifest_listed_many_times_is_one_subject(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_manifest_listed_many_times_is_one_subject_on_distribution() {
    one_manifest_listed_many_times_is_one_subject(Kind::Distribution).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_too_many_platform_manifests_is_refused() {
    let registry = Registry::start(Kind::Zot);
    let client = registry.client();
    let debian = push_fixture(&client, "debian").await;
    let manifest = &debian.platform_manifests[0];
    let repository: RepositoryName = "fixtures/debian".parse().unwrap();
    // 257 manifests of the one image, told apart by an annotation.
    let mut entries = Vec::new();
    for n in 0..257 {
        let mut distinct: Value = serde_json::from_slice(&manifest.bytes).unwrap();
        distinct["annotations"] = json!({ "n": n.to_string() });
        let bytes = serde_json::to_vec(&distinct).unwrap();
        client
            .put_manifest(
                &repository,
                &Target::Digest(refcat::digest::sha256(&bytes)),
                &manifest.media_type,
                bytes.clone().into(),
            )
            .await
            .unwrap();
        entries.push(entry(&manifest.media_type, &bytes));
    }
    push_index(&client, &repository, "many", entries).await;
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let mut plan = refcat_publish(keys.path());
    plan.args([
        "--dry-run",
        &format!("{}/fixtures/debian:many", registry.host),
    ]);
    let out = output(plan).await;
    assert_ne!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        stderr(&out)
            .contains("lists 257 distinct platform image manifests; refcat handles at most 256"),
        "{}",
        stderr(&out)
    );
}
