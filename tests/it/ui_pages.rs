//! The web catalog in a real Chromium, against zot holding the published fixtures:
//! each table's rows are the `/v1` JSON's rows, a filter changes the URL and the rows
//! and Back restores them, and the same URL without JavaScript gives the same rows.
//! Screenshots go to `target/ui-shots/` for review.

use std::path::PathBuf;

use fantoccini::Locator;
use serde_json::Value;

use crate::common::browser;
use crate::common::served::{get_json, serve};
use crate::common::Kind;

/// The `data-name` of each directory row, as the browser shows them.
async fn directory_rows(client: &fantoccini::Client) -> Vec<String> {
    let mut names = Vec::new();
    for row in client
        .find_all(Locator::Css("#images tbody tr[data-name]"))
        .await
        .unwrap()
    {
        names.push(row.attr("data-name").await.unwrap().unwrap());
    }
    names
}

/// The repository names of a `/v1/images` answer.
fn json_names(directory: &Value) -> Vec<String> {
    directory["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

/// The `data-name`s in a page fetched without JavaScript.
async fn plain_rows(url: &str) -> Vec<String> {
    let html = reqwest::get(url).await.unwrap().text().await.unwrap();
    html.split("data-name=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-shots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_page_shows_the_api_rows_and_filters_by_url() {
    let served = serve(Kind::Zot).await;
    let browser = browser::start(1280, 900).await;
    let client = &browser.client;

    client.goto(&format!("{}/", served.base)).await.unwrap();
    let (_, all) = get_json(format!("{}/v1/images", served.base)).await;
    let everything = directory_rows(client).await;
    assert!(!everything.is_empty());
    assert_eq!(everything, json_names(&all));
    client
        .screenshot()
        .await
        .map(|png| std::fs::write(shots().join("directory-1280x900-light.png"), png))
        .unwrap()
        .unwrap();

    // Search by name: the URL carries the filter, the rows are the API's for it.
    let search = client.find(Locator::Css("input[name=q]")).await.unwrap();
    search.send_keys("alp").await.unwrap();
    client
        .find(Locator::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("q=alp")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the URL never took the filter"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let url = client.current_url().await.unwrap().to_string();
    let (_, filtered) = get_json(format!("{}/v1/images?q=alp", served.base)).await;
    let mut shown = directory_rows(client).await;
    while shown != json_names(&filtered) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        shown = directory_rows(client).await;
    }
    assert_eq!(shown, json_names(&filtered));
    assert!(shown.len() < everything.len(), "{shown:?}");
    // The same URL without JavaScript.
    assert_eq!(plain_rows(&url).await, shown);

    // Back restores the unfiltered rows.
    client.back().await.unwrap();
    let mut restored = directory_rows(client).await;
    while restored != everything
        && std::time::Instant::now() < deadline + std::time::Duration::from_secs(5)
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        restored = directory_rows(client).await;
    }
    assert_eq!(restored, everything);

    // The dark theme, by the toggle.
    client
        .find(Locator::Id("theme-toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let theme = client
        .execute("return document.documentElement.dataset.theme", vec![])
        .await
        .unwrap();
    assert_eq!(theme, "dark");
    let png = client.screenshot().await.unwrap();
    std::fs::write(shots().join("directory-1280x900-dark.png"), png).unwrap();

    // Every resource came from the page's own origin.
    let origins = client
        .execute(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)",
            vec![],
        )
        .await
        .unwrap();
    for origin in origins.as_array().unwrap() {
        assert_eq!(origin.as_str().unwrap(), served.base, "{origins}");
    }

    // A repository: its tag rows are the tags view's.
    client
        .goto(&format!("{}/images/fixtures/alpine", served.base))
        .await
        .unwrap();
    let (_, tags) = get_json(format!("{}/v1/images/fixtures/alpine/tags", served.base)).await;
    let mut rows = Vec::new();
    for row in client
        .find_all(Locator::Css("#tag-table tbody tr[data-tag]"))
        .await
        .unwrap()
    {
        rows.push(row.attr("data-tag").await.unwrap().unwrap());
    }
    let expected: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(rows, expected);
    std::fs::write(
        shots().join("overview-1280x900-dark.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();

    // A tag: per platform, as many match rows as the vulnerabilities view has.
    client
        .goto(&format!("{}/images/fixtures/alpine/tags/3.19", served.base))
        .await
        .unwrap();
    let (_, vulnerabilities) = get_json(format!(
        "{}/v1/images/fixtures/alpine/vulnerabilities/3.19",
        served.base
    ))
    .await;
    let shown = client
        .find_all(Locator::Css("table.matches tbody tr"))
        .await
        .unwrap()
        .len();
    let expected: usize = vulnerabilities["platforms"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["matches"].as_array().unwrap().len().max(1))
        .sum();
    assert_eq!(shown, expected);
    std::fs::write(
        shots().join("tag-1280x900-dark.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    browser.client.clone().close().await.unwrap();
}
