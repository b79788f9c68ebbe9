//! refcat's registry layer and `refcat discover` against real registries and the real
//! oras CLI: what one writes, the other reads, on a registry with the referrers API and
//! on docker-registry 2.8 (tag-schema fallback).

use crate::common;

use std::collections::BTreeSet;

use crate::common::{oras, push_fixture, Kind, Registry};
use refcat::artifact::{ArtifactBuilder, ArtifactLayer};
use refcat::catalog::referrers_tree::{referrers_tree, ReferrerNode, TreeOptions};
use refcat::reference::Reference;
use serde_json::Value;

fn digests(node: &Value, out: &mut BTreeSet<String>) {
    for r in node["referrers"].as_array().unwrap() {
        out.insert(r["digest"].as_str().unwrap().to_string());
        digests(r, out);
    }
}

fn our_digests(node: &ReferrerNode, out: &mut BTreeSet<String>) {
    for r in &node.referrers {
        out.insert(r.digest.to_string());
        our_digests(r, out);
    }
}

async fn round_trip(kind: Kind) {
    let registry = Registry::start(kind);
    let client = registry.client();
    let image = push_fixture(&client, "debian").await;
    let subject_ref = format!(
        "{}/{}@{}",
        registry.host, image.repository, image.top.digest
    );

    // 1. An artifact pushed with refcat's registry layer shows up in oras discover.
    let subject = image.top.descriptor();
    let ours = ArtifactBuilder::new("application/vnd.refcat.test+json")
        .subject(subject)
        .layer(ArtifactLayer {
            media_type: "application/json".into(),
            data: br#"{"hello":"oras"}"#.to_vec().into(),
            title: "hello.json".into(),
        })
        .annotation("org.opencontainers.image.created", "2026-11-22T00:00:00Z")
        .annotation("dev.refcat.test", "yes")
        .build();
    client
        .push_artifact(&image.repository, &ours)
        .await
        .unwrap();

    let out = oras(&["discover", "--format", "json", &subject_ref]);
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = tree["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["digest"] == ours.digest.to_string())
        .expect("oras lists refcat's artifact");
    assert_eq!(found["artifactType"], "application/vnd.refcat.test+json");
    assert_eq!(found["annotations"]["dev.refcat.test"], "yes");

    // 2. An artifact attached with oras shows up in refcat discover, and 3. a referrer
    // of that referrer appears at depth 2 in both tools.
    let level1 = common::oras_attach(&subject_ref, "application/vnd.oras.test.a");
    let level2 = common::oras_attach(
        &format!("{}/{}@{level1}", registry.host, image.repository),
        "application/vnd.oras.test.b",
    );

    let reference: Reference = subject_ref.parse().unwrap();
    let tree_ours = referrers_tree(&client, &reference, &TreeOptions::default())
        .await
        .unwrap();
    let node1 = tree_ours
        .referrers
        .iter()
        .find(|r| r.digest.to_string() == level1)
        .expect("refcat lists oras's artifact");
    assert_eq!(
        node1.artifact_type,
        Some("application/vnd.oras.test.a".to_string())
    );
    assert_eq!(
        node1.annotations.get("from").map(String::as_str),
        Some("oras")
    );
    assert_eq!(node1.referrers.len(), 1);
    assert_eq!(node1.referrers[0].digest.to_string(), level2);

    let out = oras(&["discover", "--format", "json", &subject_ref]);
    let tree_oras: Value = serde_json::from_slice(&out.stdout).unwrap();
    let oras_node1 = tree_oras["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["digest"] == level1.as_str())
        .unwrap();
    assert_eq!(oras_node1["referrers"][0]["digest"], level2.as_str());

    // 4. Both tools list the same digest set.
    let (mut a, mut b) = (BTreeSet::new(), BTreeSet::new());
    digests(&tree_oras, &mut a);
    our_digests(&tree_ours, &mut b);
    assert_eq!(a, b);
    assert_eq!(a.len(), 3);

    // The CLI prints the same nodes as JSON.
    let out = common::run_ok(common::refcat().args(["discover", "--format", "json", &subject_ref]));
    let cli_tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut c = BTreeSet::new();
    digests(&cli_tree, &mut c);
    assert_eq!(a, c);

    // --depth 1 stops after the first level, as oras does.
    let shallow = referrers_tree(
        &client,
        &reference,
        &TreeOptions {
            depth: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        shallow.referrers.len(),
        2,
        "both first-level referrers are listed"
    );
    assert!(shallow.referrers.iter().all(|r| r.referrers.is_empty()));

    // The API registry is detected as such; docker-registry 2.8 as lacking it.
    assert_eq!(
        client.referrers_api_known(&image.repository),
        Some(kind == Kind::Zot)
    );
}

#[tokio::test]
async fn referrers_round_trip_on_zot() {
    round_trip(Kind::Zot).await;
}

#[tokio::test]
async fn referrers_round_trip_on_distribution_tag_schema() {
    round_trip(Kind::Distribution).await;
}

async fn platform_filter(kind: Kind) {
    let registry = Registry::start(kind);
    let client = registry.client();
    let image = push_fixture(&client, "alpine").await;
    let arm = &image.platform_manifests[1];
    let arm_ref = format!("{}/{}@{}", registry.host, image.repository, arm.digest);
    common::oras_attach(&arm_ref, "application/vnd.test.arm");

    let tag_ref = format!("{}/{}:3.19", registry.host, image.repository);
    let ours = common::run_ok(common::refcat().args([
        "discover",
        "--format",
        "json",
        "--platform",
        "linux/arm64",
        &tag_ref,
    ]));
    let theirs = oras(&[
        "discover",
        "--format",
        "json",
        "--platform",
        "linux/arm64",
        &tag_ref,
    ]);
    let (ours, theirs): (Value, Value) = (
        serde_json::from_slice(&ours.stdout).unwrap(),
        serde_json::from_slice(&theirs.stdout).unwrap(),
    );
    assert_eq!(ours["digest"], arm.digest.to_string());
    assert_eq!(ours["digest"], theirs["digest"]);
    assert_eq!(
        ours["referrers"][0]["artifactType"],
        "application/vnd.test.arm"
    );
    assert_eq!(ours["referrers"][0], theirs["referrers"][0]);

    // A platform the index lacks is a clear error.
    let out = common::refcat()
        .args(["discover", "--platform", "linux/s390x", &tag_ref])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no manifest for platform linux/s390x") && err.contains("linux/amd64"),
        "{err}"
    );
}

#[tokio::test]
async fn platform_selection_matches_oras_on_zot() {
    platform_filter(Kind::Zot).await;
}

#[tokio::test]
async fn platform_selection_matches_oras_on_distribution() {
    platform_filter(Kind::Distribution).await;
}
