//! Who may read the catalog. On a zot with htpasswd users and access control, `serve
//! --auth pass-through` reads with each caller's own credentials: two users see
//! different directories, an anonymous caller is challenged, a repository a user may
//! not pull is refused, and no view cached for one user is served to another (the proxy
//! in front of zot counts each user's registry requests). `--auth token` takes static
//! bearer tokens; an open catalog is refused on a non-loopback address without --public.

use std::process::Stdio;
use std::time::Duration;

use axum::http::Method;
use refcat::registry::{Client, ClientConfig, Credentials, Secret};

use crate::common::faults::FaultProxy;
use crate::common::published::{code, output, stderr};
use crate::common::serving::ServeProcess as Served;
use crate::common::{free_port, refcat, refcat_publish, testdata, write_keys, Registry};

pub(crate) const PASSWORD: &str = "pa55-word";

/// zot where alice reads `team-a/**`, bob `team-b/**`, both `shared/**`, and admin
/// may do anything.
pub(crate) fn zot_with_users() -> Registry {
    Registry::zot_with(|config, dir| {
        let hash = bcrypt::hash(PASSWORD, 5).unwrap();
        let lines: String = ["alice", "bob", "admin"]
            .iter()
            .map(|user| format!("{user}:{hash}\n"))
            .collect();
        let path = dir.join("htpasswd");
        std::fs::write(&path, lines).unwrap();
        let read = |users: &[&str]| serde_json::json!({ "policies": [{ "users": users, "actions": ["read"] }] });
        config["http"]["auth"] = serde_json::json!({ "htpasswd": { "path": path } });
        config["http"]["accessControl"] = serde_json::json!({
            "repositories": {
                "team-a/**": read(&["alice"]),
                "team-b/**": read(&["bob"]),
                "shared/**": read(&["alice", "bob"]),
            },
            "adminPolicy": { "users": ["admin"], "actions": ["read", "create", "update", "delete"] }
        });
    })
}

pub(crate) fn client_as(host: &str, user: &str) -> Client {
    let mut config = ClientConfig::new(host);
    config.credentials = Credentials::Basic {
        username: user.into(),
        password: Secret::new(PASSWORD),
    };
    Client::new(config)
}

/// Pushes the fixture in `testdata/images/<fixture>` as `repository`.
pub(crate) async fn push_as(client: &Client, fixture: &str, repository: &str) {
    let mut image = crate::fixture::build(&testdata().join("images").join(fixture)).unwrap();
    image.repository = repository.parse().unwrap();
    crate::fixture::push(client, &image).await.unwrap();
}

/// `refcat serve` for `registry` with `args`.
pub(crate) async fn serve(registry: &str, args: &[&str]) -> Served {
    Served::start(registry, args).await
}

/// GET `path` as `user` (anonymous when `None`): status, headers and JSON body.
pub(crate) async fn get(
    served: &Served,
    path: &str,
    user: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", served.base));
    if let Some(user) = user {
        request = request.basic_auth(user, Some(PASSWORD));
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let body = response.bytes().await.unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or_default(),
    )
}

/// The web catalog's directory page as `user`, which must be 200.
pub(crate) async fn directory_page(served: &Served, user: &str) -> String {
    let page = reqwest::Client::new()
        .get(format!("{}/", served.base))
        .header("accept", "text/html")
        .basic_auth(user, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

pub(crate) fn names(directory: &serde_json::Value) -> Vec<String> {
    directory["images"]
        .as_array()
        .unwrap_or_else(|| panic!("{directory}"))
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_shows_each_caller_what_they_may_pull() {
    let registry = zot_with_users();
    let admin = client_as(&registry.host, "admin");
    push_as(&admin, "alpine", "team-a/alpine").await;
    push_as(&admin, "debian", "team-b/debian").await;
    push_as(&admin, "lang", "shared/app").await;
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let mut publish = refcat_publish(keys.path());
    publish
        .args(["--username", "admin"])
        .env("REFCAT_PASSWORD", PASSWORD)
        .args(
            ["team-a/alpine:3.19", "team-b/debian:12", "shared/app:1.0.0"]
                .map(|r| format!("{}/{r}", registry.host)),
        );
    let out = output(publish).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let proxy = FaultProxy::start(&registry.host).await;
    let public = keys.path().join("refcat.pub");
    let served = Served::start(
        &proxy.host,
        &["--auth", "pass-through", "--key", public.to_str().unwrap()],
    )
    .await;

    // Anonymous: challenged, as JSON and as a page a browser signs in from.
    let (status, headers, _) = get(&served, "/v1/images", None).await;
    assert_eq!(status, 401);
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let page = reqwest::Client::new()
        .get(format!("{}/", served.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 401);
    assert!(page.headers().contains_key("www-authenticate"));
    assert!(page.text().await.unwrap().contains("<html"));
    // Open routes stay open.
    assert_eq!(get(&served, "/readyz", None).await.0, 200);
    assert_eq!(get(&served, "/v1/openapi.json", None).await.0, 200);

    // No view cached for one caller is served to another (before either read anything
    // else of the repository): bob's first read of a view alice has cached goes to the
    // registry with bob's credentials; alice's second read sends nothing. What was read by digest is shared once bob's own listing succeeded.
    let by = |user: &str| {
        proxy
            .all_seen()
            .into_iter()
            .filter(|s| s.user.as_deref() == Some(user))
            .collect::<Vec<_>>()
    };
    let view = "/v1/images/shared/app/tags";
    let before = by("alice").len();
    assert_eq!(get(&served, view, Some("alice")).await.0, 200);
    let alice_first = by("alice").len() - before;
    assert_eq!(get(&served, view, Some("alice")).await.0, 200);
    assert_eq!(
        by("alice").len() - before,
        alice_first,
        "alice's second read is cached"
    );
    let (bob_before, bob_blobs_before) = (by("bob").len(), blobs(&by("bob")));
    let (status, _, tags) = get(&served, view, Some("bob")).await;
    assert_eq!(status, 200, "{tags}");
    let bob_first = by("bob").len() - bob_before;
    assert!(bob_first > 0, "bob's view was read with bob's credentials");
    assert!(
        proxy
            .all_seen()
            .iter()
            .rev()
            .take(bob_first)
            .any(|s| s.method == Method::GET && s.path.contains("/v2/shared/app/tags/list")),
        "bob listed the tags himself"
    );
    assert_eq!(
        blobs(&by("bob")),
        bob_blobs_before,
        "blobs by digest were shared"
    );
    assert!(blobs(&by("alice")) > 0, "alice read the configs herself");
    assert!(alice_first > 0);

    // Each user's directory is what zot lets them list.
    let (status, headers, alice) = get(&served, "/v1/images", Some("alice")).await;
    assert_eq!(status, 200, "{alice}");
    assert_eq!(names(&alice), ["shared/app", "team-a/alpine"]);
    assert_eq!(headers["vary"], "Authorization");
    assert!(headers["cache-control"]
        .to_str()
        .unwrap()
        .starts_with("private"));
    let (_, _, bob) = get(&served, "/v1/images", Some("bob")).await;
    assert_eq!(names(&bob), ["shared/app", "team-b/debian"]);
    assert_eq!(bob["images"][0]["signed"], true, "{bob}");
    // The web catalog is read the same way.
    let html = directory_page(&served, "alice").await;
    assert!(html.contains("team-a/alpine") && !html.contains("team-b/debian"));
    // A repository one may not pull is refused, not shown.
    let (status, _, _) = get(&served, "/v1/images/team-b/debian/tags", Some("alice")).await;
    assert_eq!(status, 403);
    let (status, _, _) = get(&served, "/v1/images/team-b/debian/tags", Some("nobody")).await;
    assert_eq!(status, 401);
    // The live aggregate is each caller's too.
    let (_, _, aggregate) = get(&served, "/v1/vulnerabilities", Some("alice")).await;
    let affected: std::collections::BTreeSet<String> = aggregate["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| v["affected"].as_object().unwrap().keys().cloned())
        .collect();
    assert!(!affected.is_empty(), "{aggregate}");
    assert!(
        affected.iter().all(|r| r != "team-b/debian"),
        "{affected:?}"
    );
}

fn blobs(seen: &[crate::common::faults::Seen]) -> usize {
    seen.iter().filter(|s| s.path.contains("/blobs/")).count()
}

/// `refcat serve --auth token` taking `service-account-token-1`.
async fn serve_with_token(registry: &str) -> (Served, tempfile::NamedTempFile) {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        tokens.path(),
        "# the read-only service account\nservice-account-token-1\n",
    )
    .unwrap();
    let served = Served::start(
        registry,
        &[
            "--auth",
            "token",
            "--token-file",
            tokens.path().to_str().unwrap(),
        ],
    )
    .await;
    (served, tokens)
}

/// The names in every `Vary` header of `headers`, lower case.
fn varies_on(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all("vary")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_the_page_headers_and_vary_on_accept() {
    let registry = Registry::zot();
    let (served, _tokens) = serve_with_token(&registry.host).await;
    for accept in ["text/html,application/xhtml+xml", "application/json"] {
        let refused = reqwest::Client::new()
            .get(format!("{}/", served.base))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{accept}");
        let headers = refused.headers();
        let vary = varies_on(headers);
        assert!(
            vary.contains(&"accept".to_string()) && vary.contains(&"authorization".to_string()),
            "{accept}: {vary:?}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{accept}");
    }
    let page = reqwest::Client::new()
        .get(format!("{}/images/fixtures/alpine", served.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 401);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(page.text().await.unwrap().contains("<html"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_needs_verified_tls_off_loopback() {
    // Not a loopback name; nothing listens there, and nothing may be sent there first.
    let registry = format!("0.0.0.0:{}", free_port());
    for flag in ["--plain-http", "--insecure"] {
        let port = free_port();
        let mut child = refcat()
            .args(["serve", &registry, "--listen", &format!("127.0.0.1:{port}")])
            .args(["--auth", "pass-through", flag])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
                .await
                .is_ok()
            {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve started with --auth pass-through and {flag} for {registry}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve neither started nor stopped"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut said = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
        assert_eq!(status.code(), Some(1), "{said}");
        assert!(said.contains(flag) && said.contains("loopback"), "{said}");
    }
    // A registry on loopback is this machine's: the combination serves.
    let local = Registry::zot();
    let served = serve(&local.host, &["--auth", "pass-through", "--plain-http"]).await;
    assert_eq!(get(&served, "/readyz", None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_taken_in_any_case() {
    let registry = Registry::zot();
    let (served, _tokens) = serve_with_token(&registry.host).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let answer = reqwest::Client::new()
            .get(format!("{}/v1/images", served.base))
            .header("authorization", format!("{scheme} service-account-token-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{scheme}");
    }
    let wrong = reqwest::Client::new()
        .get(format!("{}/v1/images", served.base))
        .header("authorization", "bearer not-the-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_access_and_the_open_default() {
    let registry = Registry::zot();
    let (served, _tokens) = serve_with_token(&registry.host).await;
    let ask = |token: Option<&'static str>| {
        let mut request = reqwest::Client::new().get(format!("{}/v1/images", served.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap() }
    };
    let refused = ask(None).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["www-authenticate"],
        "Bearer realm=\"refcat\""
    );
    assert_eq!(ask(Some("not-the-token-at-all")).await.status(), 401);
    let allowed = ask(Some("service-account-token-1")).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["vary"], "Authorization");
    drop(served);

    // Open on a non-loopback address only when --public says so.
    let port = free_port();
    let mut open = refcat();
    open.args([
        "serve",
        &registry.host,
        "--listen",
        &format!("0.0.0.0:{port}"),
    ]);
    let out = output(open).await;
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--auth pass-through"),
        "{}",
        stderr(&out)
    );
    let public = Served::start_on(&registry.host, "0.0.0.0", &["--public"]).await;
    assert_eq!(get(&public, "/v1/images", None).await.0, 200);
}
