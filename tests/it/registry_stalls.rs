//! A registry that hangs: the catalog's probes and views answer by their deadlines,
//! whatever the registry client's own timeouts and retries.

use std::time::Duration;

use axum::http::Method;
use refcat::registry::{Client, ClientConfig};

use crate::common::faults::{Fault, FaultProxy, Rule};
use crate::common::{refcat, Registry};
use crate::registry_faults::setup;

/// A registry behind a proxy that holds every GET for a minute.
async fn hanging() -> (Registry, FaultProxy) {
    let (registry, proxy, _image) = setup().await;
    proxy.inject(Rule::new(
        Method::GET,
        "/v2/",
        usize::MAX,
        Fault::Delay(Duration::from_secs(60)),
    ));
    (registry, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_within_seconds_when_the_registry_hangs() {
    let (_registry, proxy) = hanging().await;
    // The client's own defaults: 30 s per attempt, 4 attempts.
    let client = Client::new(ClientConfig::new(proxy.host.clone()));
    let base = crate::common::served::start_api(refcat::web::AppState::new(
        client,
        refcat::trust::Trust::show_unverified(),
    ))
    .await;
    let asked = std::time::Instant::now();
    let response = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        asked.elapsed() < Duration::from_secs(6),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_behind_a_stuck_registry_fails_by_the_request_deadline() {
    let (_registry, proxy) = hanging().await;
    let port = crate::common::free_port();
    let mut serve = refcat()
        .args(["serve", &proxy.host, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--request-timeout", "2"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v1/images/fixtures/debian/tags");
    let http = reqwest::Client::new();
    let start = std::time::Instant::now();
    let response = loop {
        match http.get(&url).send().await {
            Ok(response) => break response,
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("serve never answered: {e}"),
        }
    };
    let took = start.elapsed();
    // A browser gets a page, with the same status and Retry-After.
    let page = http
        .get(format!("http://127.0.0.1:{port}/images/fixtures/debian"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    assert!(page.headers().contains_key("retry-after"));
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let metrics = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serve.kill().unwrap();
    serve.wait().unwrap();
    // The page loads nothing and is not sniffed; what Accept chose is said in Vary.
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["vary"], "Accept");
    // The deadline's answer is counted like any other.
    assert!(
        metrics.contains("refcat_http_requests_total{view=\"tags\",status=\"503\"} 1"),
        "{metrics}"
    );
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(response.headers()["vary"], "Accept");
    assert!(took < Duration::from_secs(10), "{took:?}");
}
