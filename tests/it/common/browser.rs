//! A real Chromium, headless, driven through Debian's chromedriver. `just tools`
//! installs both; a missing browser fails the test that needs it.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// chromedriver and a browser session; both end when this is dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    port: u16,
}

impl Drop for Browser {
    /// Ends chromedriver and the browsers it started (its process group), also when a
    /// test failed before it closed its session.
    fn drop(&mut self) {
        // SAFETY: kill(2) with a negative pid signals the process group; no memory is
        // involved.
        unsafe { libc::kill(-(self.driver.id() as i32), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

/// Starts chromedriver and a headless Chromium with a `width`×`height` window.
pub async fn start(width: u32, height: u32) -> Browser {
    let port = super::free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian: apt-get install chromium-driver; `just tools` does it)");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:loggingPrefs".into(),
        serde_json::json!({ "browser": "ALL" }),
    );
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                format!("--window-size={width},{height}"),
            ],
        }),
    );
    let start = Instant::now();
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => break client,
            Err(e) if start.elapsed() > Duration::from_secs(30) => {
                panic!("chromedriver never took a session: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    Browser {
        client,
        driver,
        port,
    }
}

impl Browser {
    /// The console's errors since last asked (chromedriver's log endpoint).
    pub async fn console_errors(&self) -> Vec<String> {
        let session = self.client.session_id().await.unwrap().unwrap();
        let url = format!("http://127.0.0.1:{}/session/{session}/se/log", self.port);
        let answer: serde_json::Value = reqwest::Client::new()
            .post(url)
            .json(&serde_json::json!({ "type": "browser" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The WCAG 2.1 A and AA violations axe-core finds in the current page (axe-core
    /// from the tools cache, injected by WebDriver, which the page's CSP does not
    /// govern).
    pub async fn accessibility_violations(&self) -> Vec<String> {
        let axe = super::tools_root().join("axe-core-4.11.0/axe.min.js");
        let source = std::fs::read_to_string(&axe)
            .unwrap_or_else(|e| panic!("{}: {e} (run `just tools`)", axe.display()));
        self.client.execute(&source, vec![]).await.unwrap();
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
                    .then(r => done(r.violations.map(v =>
                        v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
                    .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .unwrap();
        strings(&found)
    }
}

/// A JSON array of strings.
fn strings(found: &serde_json::Value) -> Vec<String> {
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Where screenshots go for review.
pub fn shots() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-shots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The attribute `name` of each element that has it, in a page fetched without
/// JavaScript.
pub async fn plain_rows(url: &str, name: &str) -> Vec<String> {
    let html = reqwest::get(url).await.unwrap().text().await.unwrap();
    html.split(&format!("{name}=\""))
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

/// Waits until the browser's URL contains `part`.
pub async fn wait_for_url(client: &fantoccini::Client, part: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !client.current_url().await.unwrap().as_str().contains(part) {
        assert!(
            std::time::Instant::now() < deadline,
            "the URL never had {part:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits until the `name` attributes of the elements `css` finds are `expected` (the
/// page body is swapped in place, a moment after the URL changes); returns them.
pub async fn rows_become(
    client: &fantoccini::Client,
    css: &str,
    name: &str,
    expected: Vec<String>,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let shown = attributes(client, css, name).await;
        if shown == expected || std::time::Instant::now() > deadline {
            assert_eq!(shown, expected);
            return shown;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The attribute `name` of every element `css` finds, read in one script run: the page
/// body may be swapped in place between two WebDriver calls.
pub async fn attributes(client: &fantoccini::Client, css: &str, name: &str) -> Vec<String> {
    let found = client
        .execute(
            "return Array.from(document.querySelectorAll(arguments[0]))
                 .map(e => e.getAttribute(arguments[1]))
                 .filter(v => v !== null)",
            vec![serde_json::json!(css), serde_json::json!(name)],
        )
        .await
        .unwrap();
    strings(&found)
}

/// Sets the page's form field `field` (a select or a text input) to `value`, submits
/// the form, and checks the
/// rows (`css`, by `attr`) become `filtered`, then that Back brings back what was
/// shown before.
pub async fn filter_round_trip(
    client: &Client,
    field: &str,
    value: &str,
    (css, attr): (&str, &str),
    filtered: Vec<String>,
) {
    let before = attributes(client, css, attr).await;
    let input = client
        .find(Locator::Css(&format!("[name={field}]")))
        .await
        .unwrap();
    if input.tag_name().await.unwrap() == "select" {
        input.select_by_value(value).await.unwrap();
    } else {
        input.send_keys(value).await.unwrap();
    }
    client
        .find(Locator::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_url(client, &format!("{field}={value}")).await;
    let shown = rows_become(client, css, attr, filtered).await;
    assert!(
        shown.len() < before.len(),
        "{field}={value} filtered nothing"
    );
    let url = client.current_url().await.unwrap().to_string();
    assert_eq!(plain_rows(&url, attr).await, shown, "without JavaScript");
    client.back().await.unwrap();
    rows_become(client, css, attr, before).await;
}
