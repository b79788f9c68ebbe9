//! Unknown is null, never zero: an image no verified scan covers answers `null` counts
//! in `/v1` and says so on its page, so a gate that reads `totals.critical == 0` never
//! passes an image nobody scanned. A catalog without keys says so on every page.

use refcat::artifact::annotations::{CREATED, FORMAT, GRYPE_DB_BUILT};
use refcat::artifact::{ArtifactBuilder, ArtifactLayer};
use refcat::media_types::GRYPE_JSON;
use refcat::reference::RepositoryName;
use serde_json::Value;

use crate::common::published::subjects;
use crate::common::serving::ServeProcess;
use crate::common::{push_fixture, write_keys, Registry};

const VIEW: &str = "/v1/images/fixtures/alpine/vulnerabilities/3.19";

async fn page(serve: &ServeProcess, path: &str) -> String {
    let response = reqwest::get(format!("{}{path}", serve.base)).await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_nobody_scanned_answers_null_not_zero() {
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let client = registry.client();
    push_fixture(&client, "alpine").await;

    // Not published yet, and nothing checked.
    let open = ServeProcess::start(&registry.host, &[]).await;
    let (status, view) = open.get(VIEW).await;
    assert_eq!(status, 200, "{view}");
    let amd64 = &view["platforms"]["linux/amd64"];
    assert_eq!(amd64["totals"], Value::Null, "{amd64}");
    assert_eq!(amd64["matches"], Value::Null, "{amd64}");
    let (_, sbom) = open.get("/v1/images/fixtures/alpine/sbom/3.19").await;
    let amd64 = &sbom["platforms"]["linux/amd64"];
    assert_eq!(amd64["total"], Value::Null, "{amd64}");
    assert_eq!(amd64["packages"], Value::Null, "{amd64}");
    let tag_page = page(&open, "/images/fixtures/alpine/tags/3.19").await;
    assert!(tag_page.contains("Unknown: no scan"), "{tag_page}");
    assert!(!tag_page.contains("No matches."));
    // The catalog-wide view knows of one tag and of no scan: unknown, not zero.
    let (status, aggregate) = open.get("/v1/vulnerabilities").await;
    assert_eq!(status, 200, "{aggregate}");
    assert_eq!(aggregate["totals"], Value::Null, "{aggregate}");
    assert_eq!(aggregate["coverage"]["scanned"], 0, "{aggregate}");
    assert_eq!(aggregate["signatures"], "not-checked", "{aggregate}");
    for path in ["/", "/images/fixtures/alpine", "/vulnerabilities"] {
        assert!(
            page(&open, path)
                .await
                .contains("Signatures are not checked"),
            "{path}"
        );
    }

    // A look-alike that claims a scan with no vulnerabilities at all.
    let repository: RepositoryName = "fixtures/alpine".parse().unwrap();
    let reference = format!("{}/fixtures/alpine:3.19", registry.host);
    for subject in subjects(&client, &reference).await {
        let forged = ArtifactBuilder::new(GRYPE_JSON)
            .subject(subject.descriptor.clone())
            .annotation(CREATED, "2099-01-01T00:00:00Z")
            .annotation(FORMAT, "grype-json")
            .annotation(GRYPE_DB_BUILT, "2099-01-01T00:00:00Z")
            .layer(ArtifactLayer {
                media_type: GRYPE_JSON.into(),
                data: bytes::Bytes::from_static(br#"{"matches":[]}"#),
                title: "vulnerabilities.grype.json".into(),
            })
            .build();
        client.push_artifact(&repository, &forged).await.unwrap();
    }
    let public = keys.path().join("refcat.pub");
    let public = public.to_str().unwrap();
    for args in [
        vec!["--key", public],
        vec!["--key", public, "--require-signature"],
    ] {
        let checking = ServeProcess::start(&registry.host, &args).await;
        let (status, view) = checking.get(VIEW).await;
        assert_eq!(status, 200, "{view}");
        let amd64 = &view["platforms"]["linux/amd64"];
        assert_eq!(amd64["totals"], Value::Null, "{args:?}: {amd64}");
        assert_eq!(amd64["matches"], Value::Null, "{args:?}: {amd64}");
        let tag_page = page(&checking, "/images/fixtures/alpine/tags/3.19").await;
        assert!(tag_page.contains("Unknown: no scan"), "{tag_page}");
        assert!(!tag_page.contains("Signatures are not checked"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_with_one_platform_scanned_answers_null_not_that_platforms_sum() {
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    push_fixture(&registry.client(), "alpine").await;
    let reference = format!("{}/fixtures/alpine:3.19", registry.host);
    let mut publish = crate::common::refcat_publish(keys.path());
    publish.args(["--platform", "linux/amd64", &reference]);
    let out = crate::common::published::output(publish).await;
    assert_eq!(crate::common::published::code(&out), 0);

    let public = keys.path().join("refcat.pub");
    let serve = ServeProcess::start(&registry.host, &["--key", public.to_str().unwrap()]).await;
    let (status, tags) = serve.get("/v1/images/fixtures/alpine/tags").await;
    assert_eq!(status, 200, "{tags}");
    let entry = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "3.19")
        .unwrap();
    let platforms = entry["platforms"].as_array().unwrap();
    let amd64 = platforms
        .iter()
        .find(|p| p["platform"] == "linux/amd64")
        .unwrap();
    assert!(amd64["vulnerabilities"].is_object(), "{amd64}");
    // arm64 was not scanned: the tag's counts are unknown, not amd64's alone.
    assert_eq!(entry["vulnerabilities"], Value::Null, "{entry}");
    let (_, directory) = serve.get("/v1/images").await;
    assert_eq!(
        directory["images"][0]["vulnerabilities"],
        Value::Null,
        "{directory}"
    );
    assert_eq!(directory["signatures"], "checked");
}
