//! `refcat serve` as an HTTP service: caching, ETags and coalescing, the OpenAPI
//! document checked by schemathesis, signature policy, and each route's own label in
//! `/metrics`.

use crate::common;

use crate::common::served::{serve, start_api};
use crate::common::Kind;
use std::time::Duration;

use refcat::cache::CacheConfig;
use refcat::web::{AppState, ViewCache};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_cache_control_and_one_registry_walk_for_concurrent_requests() {
    let served = serve(Kind::Distribution).await;
    let http = reqwest::Client::new();

    // 64 concurrent requests for a cold view cost what one request costs.
    let cold = |client: refcat::registry::Client| {
        start_api(AppState::new(
            client,
            refcat::trust::Trust::show_unverified(),
        ))
    };
    let single = served.registry.client();
    let base = cold(single.clone()).await;
    let path = "/v1/images/fixtures/alpine/tags";
    assert_eq!(
        http.get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let one: u64 = single.counter().snapshot().values().sum();
    let shared = served.registry.client();
    let base = cold(shared.clone()).await;
    let requests = (0..64).map(|_| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let many: u64 = shared.counter().snapshot().values().sum();
    assert!(one > 0);
    assert_eq!(many, one, "64 concurrent requests walked the registry once");

    // ETag and If-None-Match; Cache-Control by how long a view can stay the same.
    let url = format!("{}{path}", served.base);
    let first = http.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    assert_eq!(first.headers()["cache-control"], "public, max-age=30");
    let again = http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());
    let stale = http
        .get(&url)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);

    let details = served.ok("/v1/images/fixtures/debian/details/12").await;
    let digest = details["platforms"]["linux/amd64"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    for (view, immutable) in [
        ("details", true),
        ("sbom", false),
        ("vulnerabilities", false),
    ] {
        let response = http
            .get(format!(
                "{}/v1/images/fixtures/debian/releases/{digest}/{view}",
                served.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let cache_control = response.headers()["cache-control"].to_str().unwrap();
        assert_eq!(
            cache_control.contains("immutable"),
            immutable,
            "{view}: {cache_control}"
        );
    }

    // Compression when asked for.
    let gz = http
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_share_content_by_digest_and_names_expire_after_the_ttl() {
    use refcat::registry::RequestKind::{Blob, Manifest, Referrers, Tags};
    let served = serve(Kind::Distribution).await;
    let config = CacheConfig {
        ttl: Duration::from_secs(1),
        ..CacheConfig::default()
    };
    let client = served.registry.cached_client(config);
    let base = start_api(AppState {
        cache: ViewCache::new(config),
        ..AppState::new(client.clone(), refcat::trust::Trust::show_unverified())
    })
    .await;
    let get = |path: &'static str| {
        let url = format!("{base}{path}");
        async move {
            let response = reqwest::get(url).await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
        }
    };
    let count = |kind| client.counter().of_kind(kind);

    // The tags view reads the index, both platform manifests and their configs; the
    // details view needs nothing else.
    get("/v1/images/fixtures/alpine/tags").await;
    let before = [Manifest, Blob, Tags, Referrers].map(count);
    assert!(before[0] >= 3 && before[1] >= 2, "{before:?}");
    get("/v1/images/fixtures/alpine/details/3.19").await;
    assert_eq!([Manifest, Blob, Tags, Referrers].map(count), before);

    // After the TTL the tag is resolved again; what it points at is still known.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    get("/v1/images/fixtures/alpine/details/3.19").await;
    let after = [Manifest, Blob, Tags, Referrers].map(count);
    assert_eq!(after[0], before[0] + 1, "one tag resolution");
    assert_eq!(
        after[1..],
        before[1..],
        "no blob, tag list or referrer list"
    );

    // The tags view lists the tags again, but no manifest or config by digest.
    get("/v1/images/fixtures/alpine/tags").await;
    let last = [Manifest, Blob, Tags, Referrers].map(count);
    assert_eq!(last[1], after[1], "configs come from the cache");
    assert_eq!(last[2], after[2] + 1, "the tag list is listed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failures() {
    let served = serve(Kind::Distribution).await;
    let schema = format!("{}/v1/openapi.json", served.base);
    // schemathesis keeps a cache in its working directory: not in the checkout.
    let workdir = tempfile::tempdir().unwrap();
    let cwd = workdir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::tool("schemathesis"))
            .args(["run", &schema, "--checks", "all", "--max-examples", "25"])
            .args(["--seed", "20261122", "--no-color"])
            .env("SCHEMATHESIS_HOOKS", "")
            .current_dir(cwd)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It really ran: every operation, and many cases.
    let operations = refcat::api::openapi::document().paths.paths.len();
    assert!(
        report.contains(&format!("Tested: {operations}")),
        "{report}"
    );
    assert!(report.contains(" passed"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_signature_hides_an_artifact_whose_signature_was_removed() {
    let served = serve(Kind::Zot).await;
    let key = refcat::sign::PublicKey::from_pem(
        &std::fs::read_to_string(served.keys.path().join("refcat.pub")).unwrap(),
    )
    .unwrap();
    let with_trust = |require| {
        let state = AppState::new(
            served.registry.client(),
            refcat::trust::Trust::checking(vec![key.clone()], require).unwrap(),
        );
        start_api(state)
    };
    let get = |base: String, path: &'static str| async move {
        reqwest::get(format!("{base}{path}"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let view = "/v1/images/fixtures/debian/vulnerabilities/12";
    let before = get(with_trust(true).await, view).await;
    let amd64 = &before["platforms"]["linux/amd64"];
    assert_eq!(amd64["signature"]["verdict"], "verified");
    assert_eq!(amd64["signature"]["format"], "bundle");
    let grype = amd64["artifact"].as_str().unwrap().to_string();

    // Remove the Grype artifact's signature.
    let client = served.registry.client();
    let repository: refcat::reference::RepositoryName = "fixtures/debian".parse().unwrap();
    let signatures = client
        .referrers(&repository, &grype.parse().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(signatures.len(), 1);
    client
        .delete_manifest(&repository, &signatures[0].digest)
        .await
        .unwrap();

    let hidden = get(with_trust(true).await, view).await;
    let amd64 = &hidden["platforms"]["linux/amd64"];
    assert_eq!(amd64["artifact"], Value::Null, "{hidden}");
    assert_eq!(amd64["matches"], Value::Null, "{hidden}");
    assert_eq!(amd64["totals"], Value::Null, "{hidden}");
    let tags = get(with_trust(true).await, "/v1/images/fixtures/debian/tags").await;
    let platform = &tags["tags"][0]["platforms"][0];
    assert_eq!(platform["vulnerabilities"], Value::Null);
    assert_eq!(platform["signed"], false);
    // The SBOM's signature is intact, so it stays visible.
    let sbom = get(with_trust(true).await, "/v1/images/fixtures/debian/sbom/12").await;
    assert_eq!(
        sbom["platforms"]["linux/amd64"]["signature"]["verdict"],
        "verified"
    );

    let reported = get(with_trust(false).await, view).await;
    let amd64 = &reported["platforms"]["linux/amd64"];
    assert_eq!(amd64["artifact"], grype.as_str());
    assert_eq!(amd64["signature"]["verdict"], "unsigned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_route_under_its_own_view() {
    let registry = common::Registry::start(Kind::Zot);
    let debian = common::push_fixture(&registry.client(), "debian").await;
    let served = crate::common::serving::ServeProcess::start(&registry.host, &[]).await;
    let image = "fixtures/debian";
    let digest = debian.top.digest.to_string();
    let routes = [
        ("/v1/images".to_string(), "directory"),
        (format!("/v1/images/{image}"), "overview"),
        (format!("/v1/images/{image}/tags"), "tags"),
        (format!("/v1/images/{image}/details/12"), "details"),
        (format!("/v1/images/{image}/sbom/12"), "sbom"),
        (
            format!("/v1/images/{image}/vulnerabilities/12"),
            "vulnerabilities",
        ),
        (format!("/v1/images/{image}/history/12"), "history"),
        (format!("/v1/images/{image}/provenance/12"), "provenance"),
        (
            format!("/v1/images/{image}/compare/12...bookworm"),
            "compare",
        ),
        (
            format!("/v1/images/{image}/releases/{digest}/details"),
            "releases",
        ),
        ("/v1/vulnerabilities".to_string(), "aggregate"),
        ("/v1/vulnerabilities/CVE-2023-4911".to_string(), "advisory"),
        ("/v1/openapi.json".to_string(), "openapi"),
        ("/".to_string(), "page_directory"),
        ("/vulnerabilities".to_string(), "page_vulnerabilities"),
        (
            "/vulnerabilities/CVE-2023-4911".to_string(),
            "page_advisory",
        ),
        (format!("/images/{image}"), "page_overview"),
        (format!("/images/{image}/tags/12"), "page_tag"),
        (
            format!("/images/{image}/tags/12/artifacts"),
            "page_artifacts",
        ),
        (
            format!("/images/{image}/tags/12/download/packages.csv"),
            "page_download",
        ),
        (format!("/images/{image}/history/12"), "page_history"),
        (
            format!("/images/{image}/compare/12...bookworm"),
            "page_compare",
        ),
        ("/assets/none.css".to_string(), "assets"),
    ];
    for (path, _) in &routes {
        reqwest::get(format!("{}{path}", served.base))
            .await
            .unwrap();
    }
    let metrics = reqwest::get(format!("{}/metrics", served.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Answers by view, whatever their status.
    let mut by_view = std::collections::BTreeMap::<&str, u64>::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("refcat_http_requests_total{view=\"") else {
            continue;
        };
        let (view, rest) = rest.split_once('"').unwrap();
        let count: u64 = rest.rsplit(' ').next().unwrap().parse().unwrap();
        *by_view.entry(view).or_default() += count;
    }
    for (path, view) in &routes {
        assert_eq!(by_view.get(view), Some(&1), "{path} as {view}: {by_view:?}");
    }
    assert_eq!(by_view.get("other"), None, "{by_view:?}");
}
