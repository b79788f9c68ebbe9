//! Filters on the pages besides the directory: a filter changes the URL and the rows
//! (the API's rows for the same filter), the same URL without JavaScript gives the same
//! rows, and Back restores them. Also the history's rows and the SPDX download.

use serde_json::Value;

use crate::common::browser::{self, attributes, filter_round_trip};
use crate::common::published::listed;
use crate::common::served::{get_json, serve};
use crate::common::Kind;

/// The match ids of a vulnerabilities view, platform by platform.
fn match_ids(view: &Value) -> Vec<String> {
    view["platforms"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| p["matches"].as_array().unwrap())
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_round_trip_on_every_page_that_has_them_on_zot() {
    filters_round_trip_on_every_page_that_has_them(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_round_trip_on_every_page_that_has_them_on_distribution() {
    filters_round_trip_on_every_page_that_has_them(Kind::Distribution).await;
}

async fn filters_round_trip_on_every_page_that_has_them(kind: Kind) {
    let served = serve(kind).await;
    let base = &served.base;
    let browser = browser::start(1280, 900).await;
    let client = &browser.client;

    // A tag's matches by severity.
    client
        .goto(&format!("{base}/images/fixtures/debian/tags/12"))
        .await
        .unwrap();
    let (_, all) = get_json(format!(
        "{base}/v1/images/fixtures/debian/vulnerabilities/12"
    ))
    .await;
    let rows = ("table.matches tbody tr[data-id]", "data-id");
    assert_eq!(attributes(client, rows.0, rows.1).await, match_ids(&all));
    let (_, high) = get_json(format!(
        "{base}/v1/images/fixtures/debian/vulnerabilities/12?severity=high"
    ))
    .await;
    filter_round_trip(client, "severity", "high", rows, match_ids(&high)).await;

    // The SBOM's packages are the view's; a search by name narrows them the same way.
    let names = |view: &Value| -> Vec<String> {
        view["platforms"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|p| p["packages"].as_array().unwrap())
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, packages) = get_json(format!("{base}/v1/images/fixtures/debian/sbom/12")).await;
    let rows = ("table.packages tbody tr[data-name]", "data-name");
    assert_eq!(attributes(client, rows.0, rows.1).await, names(&packages));
    let (_, searched) =
        get_json(format!("{base}/v1/images/fixtures/debian/sbom/12?name=lib")).await;
    filter_round_trip(client, "package", "lib", rows, names(&searched)).await;

    // The catalog's vulnerabilities by severity (the API lists them all; the page
    // filters the same list).
    client
        .goto(&format!("{base}/vulnerabilities"))
        .await
        .unwrap();
    let (_, aggregate) = get_json(format!("{base}/v1/vulnerabilities")).await;
    let ids = |severity: Option<&str>| -> Vec<String> {
        aggregate["vulnerabilities"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| severity.is_none_or(|s| v["severity"] == s))
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect()
    };
    let rows = ("#vulnerabilities tbody tr[data-id]", "data-id");
    assert_eq!(attributes(client, rows.0, rows.1).await, ids(None));
    filter_round_trip(client, "severity", "high", rows, ids(Some("high"))).await;

    // A stream's releases are the history view's.
    client
        .goto(&format!("{base}/images/fixtures/alpine/history/3.19"))
        .await
        .unwrap();
    let (_, history) = get_json(format!("{base}/v1/images/fixtures/alpine/history/3.19")).await;
    let digests: Vec<String> = history["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect();
    assert!(!digests.is_empty());
    assert_eq!(
        attributes(client, "#releases tbody tr[data-digest]", "data-digest").await,
        digests
    );

    // The SPDX download is the file `oras pull` writes.
    let (_, sbom) = get_json(format!("{base}/v1/images/fixtures/alpine/sbom/3.19")).await;
    let subject = sbom["platforms"]["linux/amd64"]["digest"].as_str().unwrap();
    let at = format!("{}/fixtures/alpine@{subject}", served.registry.host);
    let spdx = listed(&at)["spdx-json"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let pulled = tempfile::tempdir().unwrap();
    crate::common::oras(&[
        "pull",
        "-o",
        pulled.path().to_str().unwrap(),
        &format!("{}/fixtures/alpine@{spdx}", served.registry.host),
    ]);
    let expected = std::fs::read(pulled.path().join("sbom.spdx.json")).unwrap();
    let got = reqwest::get(format!(
        "{base}/images/fixtures/alpine/tags/3.19/download/sbom.spdx.json?platform=linux/amd64"
    ))
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    assert_eq!(got.as_ref(), expected.as_slice());
    browser.client.clone().close().await.unwrap();
}

/// The artifacts page's referrers tree lists what `oras discover` lists, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_referrers_tree_is_what_oras_discover_shows() {
    let served = serve(Kind::Zot).await;
    let base = &served.base;
    let (_, sbom) = get_json(format!("{base}/v1/images/fixtures/alpine/sbom/3.19")).await;
    let subject = sbom["platforms"]["linux/amd64"]["digest"].as_str().unwrap();
    let at = format!("{}/fixtures/alpine@{subject}", served.registry.host);
    let out = crate::common::oras(&["discover", "--format", "json", &at]);
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    fn walk(node: &Value, out: &mut Vec<String>) {
        for child in node["referrers"].as_array().into_iter().flatten() {
            out.push(child["digest"].as_str().unwrap().to_string());
            walk(child, out);
        }
    }
    let mut expected = Vec::new();
    walk(&tree, &mut expected);
    expected.sort();
    let page = reqwest::get(format!("{base}/images/fixtures/alpine/tags/3.19/artifacts"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The page's first platform section is linux/amd64 (platforms sort by name).
    let amd64 = page.split("<section").nth(1).unwrap();
    let mut shown: Vec<String> = amd64
        .split("data-digest=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect();
    shown.sort();
    assert!(!expected.is_empty());
    assert_eq!(shown, expected);
}
