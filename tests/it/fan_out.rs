//! Views that fan out over repositories, tags and platforms: however many run at once,
//! `serve` has at most 32 registry requests waiting for an answer (a proxy in front of
//! zot, slow on every manifest, counts them); a directory filter on an architecture
//! that does not exist is refused before it walks anything.

use std::time::Duration;

use axum::http::Method;
use futures_util::future::join_all;
use refcat::reference::Target;

use crate::common::faults::{Fault, FaultProxy, Rule};
use crate::common::served::get_json;
use crate::common::serving::ServeProcess;
use crate::common::{testdata, Kind, Registry};

/// The most registry requests the README promises in flight at once.
const IN_FLIGHT: usize = 32;

/// Pushes the debian fixture as `repositories` repositories of `tags` tags each.
async fn many_tags(registry: &Registry, repositories: usize, tags: usize) -> Vec<String> {
    let client = registry.client();
    let image = crate::fixture::build(&testdata().join("images/debian")).unwrap();
    let mut names = Vec::new();
    for r in 0..repositories {
        let mut copy = image.clone();
        copy.repository = format!("fan/r{r}").parse().unwrap();
        crate::fixture::push(&client, &copy).await.unwrap();
        for t in 0..tags {
            client
                .put_manifest(
                    &copy.repository,
                    &Target::Tag(format!("1.{t}").parse().unwrap()),
                    &copy.top.media_type,
                    copy.top.bytes.clone(),
                )
                .await
                .unwrap();
        }
        names.push(copy.repository.to_string());
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_views_keep_registry_requests_in_flight_bounded() {
    let registry = Registry::start(Kind::Zot);
    let repositories = many_tags(&registry, 8, 20).await;
    let proxy = FaultProxy::start(&registry.host).await;
    // Every manifest takes a while, so that requests pile up as the views fan out.
    proxy.inject(Rule::new(
        Method::GET,
        "/manifests/",
        usize::MAX,
        Fault::Delay(Duration::from_millis(200)),
    ));
    let served = ServeProcess::start(&proxy.host, &[]).await;
    let mut views: Vec<String> = repositories
        .iter()
        .map(|r| format!("{}/v1/images/{r}/tags", served.base))
        .collect();
    views.push(format!("{}/v1/images", served.base));
    let answers = join_all(views.iter().cloned().map(get_json)).await;
    for (view, (status, body)) in views.iter().zip(&answers) {
        assert_eq!(*status, 200, "{view}: {body}");
    }
    for (status, body) in &answers[..repositories.len()] {
        assert_eq!(
            body["tags"].as_array().unwrap().len(),
            20 + 2,
            "{status}: {body}"
        );
    }
    let most = proxy.most_in_flight();
    assert!(most <= IN_FLIGHT, "{most} requests in flight at once");
    // The views did overlap: the bound was reached, not just respected.
    assert!(most >= IN_FLIGHT / 2, "{most} requests in flight at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_architecture_is_refused_before_any_walk() {
    let registry = Registry::start(Kind::Zot);
    many_tags(&registry, 1, 1).await;
    let proxy = FaultProxy::start(&registry.host).await;
    let served = ServeProcess::start(&proxy.host, &[]).await;
    let before = proxy.all_seen().len();
    for value in ["amd65", "x86_64", "AMD64", "anything-at-all"] {
        let (status, body) =
            get_json(format!("{}/v1/images?architecture={value}", served.base)).await;
        assert_eq!(status, 400, "{value}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("GOARCH") && detail.contains("arm64"),
            "{detail}"
        );
        let page = reqwest::get(format!("{}/?architecture={value}", served.base))
            .await
            .unwrap();
        assert_eq!(page.status(), 400, "{value}");
    }
    assert_eq!(proxy.all_seen().len(), before, "the registry was asked");
    // A known architecture filters as before.
    let (status, body) = get_json(format!("{}/v1/images?architecture=amd64", served.base)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1, "{body}");
    let (status, body) = get_json(format!("{}/v1/images?architecture=arm64", served.base)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 0, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tags_page_costs_what_its_tags_cost() {
    let registry = Registry::start(Kind::Zot);
    let repository = many_tags(&registry, 1, 250).await.remove(0);
    let proxy = FaultProxy::start(&registry.host).await;
    let served = ServeProcess::start(&proxy.host, &[]).await;
    let path = format!("/v1/images/{repository}/tags");
    let response = reqwest::get(format!("{}{path}?page=2&per_page=50", served.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let link = response.headers()["link"].to_str().unwrap().to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    // 250 numbered tags, the fixture's own two, sorted as the registry lists them.
    assert_eq!(
        (body["total"].as_u64(), body["page"].as_u64()),
        (Some(252), Some(2))
    );
    let page: Vec<&str> = body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(page.len(), 50, "{body}");
    for (rel, n) in [("first", 1), ("prev", 1), ("next", 3), ("last", 6)] {
        let wanted = format!("<{path}?page={n}&per_page=50>; rel=\"{rel}\"");
        assert!(link.contains(&wanted), "{wanted} not in {link}");
    }
    // Only the page's tags were resolved: no other tag's manifest was asked for.
    let asked: std::collections::BTreeSet<String> = proxy
        .all_seen()
        .iter()
        .filter_map(|s| s.path.split("/manifests/").nth(1).map(str::to_string))
        .filter(|reference| !reference.starts_with("sha256:"))
        .collect();
    let wanted: std::collections::BTreeSet<String> = page.iter().map(|t| t.to_string()).collect();
    assert_eq!(asked, wanted);
    // Every tag here is the same image: past one GET per tag of the page, what they
    // share by digest is read once (its referrers and config), besides the listing.
    let seen = proxy.all_seen();
    let per_tag = seen
        .iter()
        .filter(|s| s.path.contains("/manifests/") && !s.path.contains("sha256:"))
        .count();
    let shared = seen
        .iter()
        .filter(|s| !s.path.contains("/manifests/1.") && !s.path.contains("/tags/list"))
        .count();
    assert_eq!(per_tag, 50, "{seen:?}");
    assert!(shared <= 4, "{seen:?}");

    // The last page holds what is left and links no next page; past it is empty.
    let (status, body) = served.get(&format!("{path}?page=6&per_page=50")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tags"].as_array().unwrap().len(), 2, "{body}");
    let (_, body) = served.get(&format!("{path}?page=7&per_page=50")).await;
    assert_eq!(body["tags"].as_array().unwrap().len(), 0, "{body}");
    for bad in ["per_page=1001", "page=0", "per_page=0", "page=x", "n=5"] {
        let (status, body) = served.get(&format!("{path}?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // The page people browse pages the same way.
    let html = reqwest::get(format!("{}/images/{repository}?page=2", served.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Page 2 of 3"), "{html}");
    assert!(html.contains("?page=3#tags\" rel=\"next\""), "{html}");
    assert!(html.contains("#tags\" rel=\"prev\""), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_default_tag_the_directory_reads_that_tag_alone() {
    let registry = Registry::start(Kind::Zot);
    let repository = many_tags(&registry, 1, 30).await.remove(0);
    let proxy = FaultProxy::start(&registry.host).await;
    let served = ServeProcess::start(&proxy.host, &["--default-tag", "1.7"]).await;
    let (status, body) = served.get("/v1/images").await;
    assert_eq!(status, 200, "{body}");
    let summary = &body["images"][0];
    assert_eq!(summary["name"], repository.as_str(), "{body}");
    assert_eq!(summary["defaultTag"], "1.7", "{body}");
    assert_eq!(summary["tagCount"], 32, "{body}");
    let tags_asked: std::collections::BTreeSet<String> = proxy
        .all_seen()
        .iter()
        .filter_map(|s| s.path.split("/manifests/").nth(1).map(str::to_string))
        .filter(|reference| !reference.starts_with("sha256:"))
        .collect();
    assert_eq!(tags_asked, ["1.7".to_string()].into(), "{tags_asked:?}");
    // A default tag the repository lacks falls back to the newest tag.
    let served = ServeProcess::start(&proxy.host, &["--default-tag", "9.9"]).await;
    let (_, body) = served.get("/v1/images").await;
    assert!(body["images"][0]["defaultTag"].is_string(), "{body}");
    assert_ne!(body["images"][0]["defaultTag"], "9.9", "{body}");
}
