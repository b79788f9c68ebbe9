//! The web catalog in a real Chromium, against zot holding the published fixtures:
//! each table's rows are the `/v1` JSON's rows, a filter changes the URL and the rows
//! and Back restores them, and the same URL without JavaScript gives the same rows.
//! Screenshots go to `target/ui-shots/` for review.

use fantoccini::Locator;
use serde_json::Value;

use crate::common::browser;
use crate::common::served::{get_json, serve};
use crate::common::Kind;

/// The repository names of a `/v1/images` answer.
fn json_names(directory: &Value) -> Vec<String> {
    directory["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_page_shows_the_api_rows_and_filters_by_url_on_zot() {
    the_directory_page_shows_the_api_rows_and_filters_by_url(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_page_shows_the_api_rows_and_filters_by_url_on_distribution() {
    the_directory_page_shows_the_api_rows_and_filters_by_url(Kind::Distribution).await;
}

async fn the_directory_page_shows_the_api_rows_and_filters_by_url(kind: Kind) {
    let served = serve(kind).await;
    let browser = browser::start(1280, 900).await;
    let client = &browser.client;

    client.goto(&format!("{}/", served.base)).await.unwrap();
    let (_, all) = get_json(format!("{}/v1/images", served.base)).await;
    let everything = browser::attributes(client, "#images tbody tr[data-name]", "data-name").await;
    assert!(!everything.is_empty());
    assert_eq!(everything, json_names(&all));
    client
        .screenshot()
        .await
        .map(|png| std::fs::write(browser::shots().join("directory-1280x900-light.png"), png))
        .unwrap()
        .unwrap();

    // Search by name: the URL carries the filter, the rows are the API's for it, the
    // same URL without JavaScript gives them too, and Back restores the unfiltered rows.
    let (_, filtered) = get_json(format!("{}/v1/images?q=alp", served.base)).await;
    let rows = ("#images tbody tr[data-name]", "data-name");
    browser::filter_round_trip(client, "q", "alp", rows, json_names(&filtered)).await;

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
    std::fs::write(browser::shots().join("directory-1280x900-dark.png"), png).unwrap();

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
        browser::shots().join("overview-1280x900-dark.png"),
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
    // Sorted by id, the rows are the API's sorted the same way.
    client
        .goto(&format!(
            "{}/images/fixtures/alpine/tags/3.19?sort=id",
            served.base
        ))
        .await
        .unwrap();
    let (_, sorted) = get_json(format!(
        "{}/v1/images/fixtures/alpine/vulnerabilities/3.19?sort=id",
        served.base
    ))
    .await;
    let mut expected = Vec::new();
    for platform in sorted["platforms"].as_object().unwrap().values() {
        for m in platform["matches"].as_array().unwrap() {
            expected.push(m["id"].as_str().unwrap().to_string());
        }
    }
    let shown = browser::attributes(client, "table.matches tbody tr[data-id]", "data-id").await;
    assert_eq!(shown, expected);
    std::fs::write(
        browser::shots().join("tag-1280x900-dark.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();

    // The catalog-wide vulnerabilities, then one of them.
    client
        .goto(&format!("{}/vulnerabilities", served.base))
        .await
        .unwrap();
    let (_, aggregate) = get_json(format!("{}/v1/vulnerabilities", served.base)).await;
    let ids: Vec<&str> = aggregate["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        browser::attributes(client, "#vulnerabilities tbody tr", "data-id").await,
        ids
    );
    let first = client
        .find(Locator::Css("#vulnerabilities tbody tr a"))
        .await
        .unwrap();
    first.click().await.unwrap();
    browser::wait_for_url(client, &format!("/vulnerabilities/{}", ids[0])).await;
    let (_, one) = get_json(format!("{}/v1/vulnerabilities/{}", served.base, ids[0])).await;
    let affected = one["affected"].as_array().unwrap();
    assert!(!affected.is_empty(), "{one}");
    let shown = browser::attributes(client, "#affected tbody tr", "data-tag").await;
    let expected: Vec<&str> = affected
        .iter()
        .map(|a| a["tag"].as_str().unwrap())
        .collect();
    assert_eq!(shown, expected);
    std::fs::write(
        browser::shots().join("vulnerability-1280x900-dark.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    browser.client.clone().close().await.unwrap();
}

/// Two different images under one repository's tags: the compare view finds what
/// changed, and its page shows exactly those rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compare_page_shows_what_changed_between_two_releases_on_zot() {
    the_compare_page_shows_what_changed_between_two_releases(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compare_page_shows_what_changed_between_two_releases_on_distribution() {
    the_compare_page_shows_what_changed_between_two_releases(Kind::Distribution).await;
}

async fn the_compare_page_shows_what_changed_between_two_releases(kind: Kind) {
    let served = serve(kind).await;
    let client = served.registry.client();
    for fixture in ["debian", "lang"] {
        let mut image =
            crate::fixture::build(&crate::common::testdata().join("images").join(fixture)).unwrap();
        image.repository = "compare/x".parse().unwrap();
        crate::fixture::push(&client, &image).await.unwrap();
    }
    let mut publish = crate::common::refcat_publish(served.keys.path());
    publish.args([
        format!("{}/compare/x:12", served.registry.host),
        format!("{}/compare/x:1", served.registry.host),
    ]);
    let out = crate::common::published::output(publish).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::common::published::stderr(&out)
    );

    let (status, view) = get_json(format!(
        "{}/v1/images/compare/x/compare/12...1",
        served.base
    ))
    .await;
    assert_eq!(status, 200, "{view}");
    let changes = &view["platforms"]["linux/amd64"];
    let count = |field: &str| changes[field].as_array().unwrap().len();
    // Another image altogether: Debian's packages go, the app's come.
    assert!(
        count("packagesAdded") > 0 && count("packagesRemoved") > 0,
        "{changes}"
    );
    assert!(
        count("vulnerabilitiesNew") > 0 && count("vulnerabilitiesFixed") > 0,
        "{changes}"
    );

    let browser = browser::start(1280, 900).await;
    let page = &browser.client;
    page.goto(&format!("{}/images/compare/x", served.base))
        .await
        .unwrap();
    // The overview's form asks for the tags and lands on the canonical path.
    let from = page.find(Locator::Css("select[name=from]")).await.unwrap();
    from.select_by_value("12").await.unwrap();
    let to = page.find(Locator::Css("select[name=to]")).await.unwrap();
    to.select_by_value("1").await.unwrap();
    page.find(Locator::XPath("//button[text()='Compare']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser::wait_for_url(page, "/images/compare/x/compare/12...1").await;
    for (change, fields) in [
        ("added", &["packagesAdded"][..]),
        ("removed", &["packagesRemoved"]),
        ("changed", &["packagesChanged"]),
        ("new", &["vulnerabilitiesNew"]),
        ("fixed", &["vulnerabilitiesFixed"]),
        ("config", &["config"]),
    ] {
        let shown = page
            .find_all(Locator::Css(&format!("tr[data-change={change}]")))
            .await
            .unwrap()
            .len();
        let expected: usize = fields.iter().map(|f| count(f)).sum();
        assert_eq!(shown, expected, "{change}");
    }
    std::fs::write(
        browser::shots().join("compare-1280x900-light.png"),
        page.screenshot().await.unwrap(),
    )
    .unwrap();
    browser.client.clone().close().await.unwrap();
}

/// A tag page's downloads: the stored files byte for byte as `oras pull` writes them,
/// and CSV with one row per match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_the_bytes_oras_pulls_on_zot() {
    downloads_are_the_bytes_oras_pulls(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_the_bytes_oras_pulls_on_distribution() {
    downloads_are_the_bytes_oras_pulls(Kind::Distribution).await;
}

async fn downloads_are_the_bytes_oras_pulls(kind: Kind) {
    let served = serve(kind).await;
    let browser = browser::start(1280, 900).await;
    let page = &browser.client;
    page.goto(&format!("{}/images/fixtures/alpine/tags/3.19", served.base))
        .await
        .unwrap();
    let links = browser::attributes(page, "ul.downloads a", "href").await;
    let amd64 = |name: &str| {
        links
            .iter()
            .find(|l| l.contains(&format!("/download/{name}?")) && l.contains("amd64"))
            .unwrap_or_else(|| panic!("no {name} link in {links:?}"))
            .clone()
    };
    let get = |href: String| {
        let url = format!("{}{href}", served.base);
        async move {
            let response = reqwest::get(url).await.unwrap();
            assert_eq!(response.status(), 200);
            let name = response.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .split("filename=\"")
                .nth(1)
                .unwrap()
                .trim_end_matches('"')
                .to_string();
            (name, response.bytes().await.unwrap())
        }
    };
    let views = [
        ("sbom.syft.json", "sbom"),
        ("vulnerabilities.grype.json", "vulnerabilities"),
    ];
    for (file, view) in views {
        let (_, json) = get_json(format!(
            "{}/v1/images/fixtures/alpine/{view}/3.19",
            served.base
        ))
        .await;
        let artifact = json["platforms"]["linux/amd64"]["artifact"]
            .as_str()
            .unwrap();
        let pulled = tempfile::tempdir().unwrap();
        crate::common::oras(&[
            "pull",
            "-o",
            pulled.path().to_str().unwrap(),
            &format!("{}/fixtures/alpine@{artifact}", served.registry.host),
        ]);
        let (name, bytes) = get(amd64(file)).await;
        let expected = std::fs::read(pulled.path().join(&name)).unwrap();
        assert_eq!(bytes.as_ref(), expected.as_slice(), "{file} ({name})");
    }
    let (_, json) = get_json(format!(
        "{}/v1/images/fixtures/alpine/vulnerabilities/3.19",
        served.base
    ))
    .await;
    let matches = json["platforms"]["linux/amd64"]["matches"]
        .as_array()
        .unwrap()
        .len();
    let (name, csv) = get(amd64("vulnerabilities.csv")).await;
    assert_eq!(name, "vulnerabilities.csv");
    let text = String::from_utf8(csv.to_vec()).unwrap();
    assert_eq!(text.lines().count(), matches + 1, "{text}");
    assert!(text.starts_with("id,severity,package"), "{text}");
    browser.client.clone().close().await.unwrap();
}
