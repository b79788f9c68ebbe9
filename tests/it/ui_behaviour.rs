//! The web catalog's answers as HTTP: pages carry ETags and answer 304, an unknown
//! name is a 404 page, a failing registry a 503 page with Retry-After, and with
//! `--require-signature` a page hides what the API hides.

use axum::http::Method;
use refcat::registry::{Client, ClientConfig};
use refcat::web::AppState;

use crate::common::faults::{Fault, Rule};
use crate::common::served::{get_json, serve, start_api};
use crate::common::Kind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_revalidate_and_errors_are_pages() {
    let served = serve(Kind::Zot).await;
    let http = reqwest::Client::new();
    let url = format!("{}/images/fixtures/alpine", served.base);
    let first = http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = first.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let etag = first.headers()["etag"].clone();
    let again = http
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    let missing = http
        .get(format!("{}/images/fixtures/nope", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let page = missing.text().await.unwrap();
    assert!(page.contains("<h1>404 Not found</h1>"), "{page}");
    assert!(
        page.contains("There is no repository fixtures/nope in this registry."),
        "{page}"
    );
    let no_tag = http
        .get(format!("{}/images/fixtures/alpine/tags/9.9", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(no_tag.status(), 404);
    let page = no_tag.text().await.unwrap();
    assert!(page.contains("fixtures/alpine has no tag 9.9."), "{page}");
    let hostile = http
        .get(format!("{}/images/..%2Fetc/tags/x", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(hostile.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_registry_gives_a_503_page_with_retry_after() {
    let (_registry, proxy, _image) = crate::registry_faults::setup().await;
    proxy.inject(Rule::new(
        Method::GET,
        "/v2/",
        usize::MAX,
        Fault::Status(503, Some(1)),
    ));
    let mut config = ClientConfig::new(proxy.host.clone());
    config.max_attempts = 1;
    let base = start_api(AppState::new(
        Client::new(config),
        refcat::trust::Trust::show_unverified(),
    ))
    .await;
    let response = reqwest::get(format!("{base}/images/fixtures/debian/tags/12"))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let page = response.text().await.unwrap();
    assert!(page.contains("Try again in"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_signature_a_page_hides_what_the_api_hides() {
    let served = serve(Kind::Zot).await;
    // A catalog that trusts only another key: nothing refcat published verifies.
    let other = refcat::sign::KeyPair::generate().public_key();
    let state = AppState::new(
        served.registry.client(),
        refcat::trust::Trust::checking(vec![other], true).unwrap(),
    );
    let base = start_api(state).await;
    let (_, view) = get_json(format!(
        "{base}/v1/images/fixtures/alpine/vulnerabilities/3.19"
    ))
    .await;
    let amd64 = &view["platforms"]["linux/amd64"];
    assert_eq!(amd64["matches"], serde_json::Value::Null, "{amd64}");
    assert_eq!(amd64["totals"], serde_json::Value::Null, "{amd64}");
    assert_eq!(amd64["artifact"], serde_json::Value::Null, "{amd64}");
    let page = reqwest::get(format!("{base}/images/fixtures/alpine/tags/3.19"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("CVE-"),
        "the page shows a match the API hides"
    );
    // Unknown is said as unknown, never as "no matches".
    assert!(!page.contains("No matches."), "{page}");
    assert!(page.contains("Unknown: no scan"), "{page}");
    assert!(page.contains("Unknown: no SBOM"), "{page}");
    // Served by the key that signed them, the same page shows them.
    let (_, shown) = get_json(format!(
        "{}/v1/images/fixtures/alpine/vulnerabilities/3.19",
        served.base
    ))
    .await;
    let id = shown["platforms"]["linux/amd64"]["matches"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let page = reqwest::get(format!("{}/images/fixtures/alpine/tags/3.19", served.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&id), "{id}");
}
