//! Every page of the web catalog, at 1280×900 and 390×844, in the light and the dark
//! theme, on zot and on distribution 2.8: no WCAG 2.1 AA violation (axe-core), no
//! console error, nothing loaded from another origin, and at most 60 KB transferred
//! before any user action. Screenshots go to `target/ui-shots/` for review.

use fantoccini::key::Key;
use fantoccini::Locator;

use crate::common::browser::{self, Browser};
use crate::common::served::{get_json, serve};
use crate::common::Kind;

/// Bytes a page may transfer, compressed, before the user does anything.
const PAGE_BUDGET: u64 = 60 * 1024;

/// Checks the page at `url` in the current window size and both themes.
async fn check_page(browser: &Browser, base: &str, name: &str, path: &str, size: &str) {
    let client = &browser.client;
    client.goto(&format!("{base}{path}")).await.unwrap();
    let weight = client
        .execute(
            "return performance.getEntriesByType('navigation')
                 .concat(performance.getEntriesByType('resource'))
                 .reduce((sum, e) => sum + e.encodedBodySize, 0)",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(weight <= PAGE_BUDGET, "{name}: {weight} bytes transferred");
    let origins = client
        .execute(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)",
            vec![],
        )
        .await
        .unwrap();
    for origin in origins.as_array().unwrap() {
        assert_eq!(origin.as_str().unwrap(), base, "{name}: {origins}");
    }
    for theme in ["light", "dark"] {
        client
            .execute(
                "document.documentElement.dataset.theme = arguments[0]",
                vec![serde_json::json!(theme)],
            )
            .await
            .unwrap();
        let violations = browser.accessibility_violations().await;
        assert!(
            violations.is_empty(),
            "{name} ({size}, {theme}): {violations:#?}"
        );
        std::fs::write(
            browser::shots().join(format!("{name}-{size}-{theme}.png")),
            client.screenshot().await.unwrap(),
        )
        .unwrap();
    }
    let errors = browser.console_errors().await;
    // The error page's own 404 is the one error a browser reports there.
    let errors: Vec<&String> = errors
        .iter()
        .filter(|e| !(name == "not-found" && e.contains("404")))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}");
}

async fn every_page(kind: Kind) {
    let served = serve(kind).await;
    let (_, aggregate) = get_json(format!("{}/v1/vulnerabilities", served.base)).await;
    let first = aggregate["vulnerabilities"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pages = [
        ("directory", "/".to_string()),
        ("overview", "/images/fixtures/alpine".into()),
        ("tag", "/images/fixtures/alpine/tags/3.19".into()),
        (
            "artifacts",
            "/images/fixtures/alpine/tags/3.19/artifacts".into(),
        ),
        ("history", "/images/fixtures/alpine/history/3.19".into()),
        (
            "compare",
            "/images/fixtures/alpine/compare/3.19...3.19.1".into(),
        ),
        ("vulnerabilities", "/vulnerabilities".into()),
        ("vulnerability", format!("/vulnerabilities/{first}")),
        ("not-found", "/images/fixtures/nope".into()),
    ];
    let label = match kind {
        Kind::Zot => "zot",
        Kind::Distribution => "distribution",
    };
    for (width, height) in [(1280, 900), (390, 844)] {
        let browser = browser::start(width, height).await;
        for (name, path) in &pages {
            let size = format!("{width}x{height}-{label}");
            check_page(&browser, &served.base, name, path, &size).await;
        }
        browser.client.clone().close().await.unwrap();
    }

    // With the keyboard alone: search, the filters and the first row's link.
    let browser = browser::start(1280, 900).await;
    let client = &browser.client;
    client.goto(&format!("{}/", served.base)).await.unwrap();
    let mut reached = Vec::new();
    for _ in 0..20 {
        client
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Tab.to_string())
            .await
            .unwrap();
        let active = client.active_element().await.unwrap();
        let name = active.attr("name").await.unwrap();
        let href = active.attr("href").await.unwrap();
        reached.push(name.or(href).unwrap_or_default());
    }
    for wanted in ["q", "architecture", "highest", "/images/fixtures/alpine"] {
        assert!(
            reached.iter().any(|r| r == wanted),
            "Tab never reached {wanted}: {reached:?}"
        );
    }
    let row_link = client
        .find(Locator::Css("#images tbody a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap();
    assert_eq!(row_link.as_deref(), Some("/images/fixtures/alpine"));
    browser.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_accessible_light_and_same_origin_on_zot() {
    every_page(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_accessible_light_and_same_origin_on_distribution() {
    every_page(Kind::Distribution).await;
}
