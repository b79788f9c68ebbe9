//! `serve --auth pass-through` on a registry with distribution's token auth, as Harbor
//! and Docker Hub have it (docker-registry 2.8 and distribution's own token server). A
//! token that lacks a repository is answered 401 with `error="insufficient_scope"`,
//! where zot answers 403: that repository is left out of the user's views and its own
//! views are 403, not a sign-in prompt. A token service that fails (429, 5xx) is waited
//! for and then reported as unavailable, never as refused credentials.

use axum::http::Method;

use crate::common::faults::{Fault, Rule};
use crate::common::published::{code, output, stderr};
use crate::common::refcat;
use crate::common::token_auth::TokenAuth;
use crate::serve_access::{directory_page, get, names, push_as, serve, PASSWORD};

/// A token-auth registry where alice pushed `alice/app` and bob `bob/app`; each may
/// pull only their own.
async fn alice_and_bob() -> TokenAuth {
    let auth = TokenAuth::start(&[("alice", PASSWORD), ("bob", PASSWORD)]).await;
    push_as(&auth.client_as("alice", PASSWORD), "alpine", "alice/app").await;
    push_as(&auth.client_as("bob", PASSWORD), "debian", "bob/app").await;
    auth
}

/// `serve` in front of the registry, passing each caller's credentials through to the
/// token service the test trusts.
async fn serve_passing_through(auth: &TokenAuth) -> crate::common::serving::ServeProcess {
    serve(
        &auth.registry.host,
        &[
            "--auth",
            "pass-through",
            "--trusted-realm",
            &auth.realm.host,
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_outside_a_users_token_scope_is_left_out_not_a_sign_in() {
    let auth = alice_and_bob().await;
    let served = serve_passing_through(&auth).await;

    // The registry's catalog lists both; each user's directory holds their own.
    let (status, headers, directory) = get(&served, "/v1/images", Some("alice")).await;
    assert_eq!(status, 200, "{headers:?} {directory}");
    assert_eq!(names(&directory), ["alice/app"]);
    let (status, _, directory) = get(&served, "/v1/images", Some("bob")).await;
    assert_eq!(status, 200, "{directory}");
    assert_eq!(names(&directory), ["bob/app"]);
    // The live aggregate is read the same way.
    let (status, _, aggregate) = get(&served, "/v1/vulnerabilities", Some("alice")).await;
    assert_eq!(status, 200, "{aggregate}");
    assert!(!aggregate.to_string().contains("bob/app"), "{aggregate}");
    // bob's repository itself is forbidden to alice, without a challenge.
    for path in ["/v1/images/bob/app/tags", "/v1/images/bob/app"] {
        let (status, headers, body) = get(&served, path, Some("alice")).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!headers.contains_key("www-authenticate"), "{path}");
    }
    // The web catalog's directory too: a page, not a browser's sign-in prompt.
    let html = directory_page(&served, "alice").await;
    assert!(html.contains("alice/app") && !html.contains("bob/app"));
    // Wrong credentials are still a sign-in prompt.
    let (status, headers, _) = get(&served, "/v1/images", Some("mallory")).await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_service_is_waited_for_not_taken_for_refused_credentials() {
    let auth = alice_and_bob().await;
    let discover = || {
        let mut discover = refcat();
        discover
            .args([
                "discover",
                &format!("{}/alice/app:3.19", auth.registry.host),
            ])
            .args(["--username", "alice", "--trusted-realm", &auth.realm.host])
            .env("REFCAT_PASSWORD", PASSWORD);
        discover
    };
    let tokens = || auth.realm.seen(Method::GET, "/token/").len();

    // Two failures, then a token: the command goes on.
    auth.realm.inject(Rule::new(
        Method::GET,
        "/token/",
        2,
        Fault::Status(503, None),
    ));
    let before = tokens();
    let out = output(discover()).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        tokens() - before >= 3,
        "{} token requests",
        tokens() - before
    );

    // Failing on every try: the registry's side is unavailable (5), the credentials
    // were not refused (4).
    auth.realm.inject(Rule::new(
        Method::GET,
        "/token/",
        usize::MAX,
        Fault::Status(429, Some(0)),
    ));
    let out = output(discover()).await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("HTTP 429"), "{}", stderr(&out));

    // Pass-through: a 503 to come back to, not a sign-in prompt.
    let served = serve_passing_through(&auth).await;
    let (status, headers, body) = get(&served, "/v1/images/alice/app/tags", Some("alice")).await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(!headers.contains_key("www-authenticate"));
    auth.realm.clear();
    let (status, _, body) = get(&served, "/v1/images/alice/app/tags", Some("alice")).await;
    assert_eq!(status, 200, "{body}");
}
