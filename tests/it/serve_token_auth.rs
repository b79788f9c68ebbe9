//! `serve --auth pass-through` on a registry with distribution's token auth, as Harbor
//! and Docker Hub have it (docker-registry 2.8 and distribution's own token server). A
//! token that lacks a repository is answered 401 with `error="insufficient_scope"`,
//! where zot answers 403: that repository is left out of the user's views and its own
//! views are 403, not a sign-in prompt.

use crate::common::token_auth::TokenAuth;
use crate::serve_access::{get, names, push_as, serve, PASSWORD};

/// A token-auth registry where alice pushed `alice/app` and bob `bob/app`; each may
/// pull only their own.
async fn alice_and_bob() -> TokenAuth {
    let auth = TokenAuth::start(&[("alice", PASSWORD), ("bob", PASSWORD)]).await;
    push_as(&auth.client_as("alice", PASSWORD), "alpine", "alice/app").await;
    push_as(&auth.client_as("bob", PASSWORD), "debian", "bob/app").await;
    auth
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_outside_a_users_token_scope_is_left_out_not_a_sign_in() {
    let auth = alice_and_bob().await;
    let served = serve(
        &auth.registry.host,
        &[
            "--auth",
            "pass-through",
            "--trusted-realm",
            &auth.realm.host,
        ],
    )
    .await;

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
    let page = reqwest::Client::new()
        .get(format!("{}/", served.base))
        .header("accept", "text/html")
        .basic_auth("alice", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("alice/app") && !html.contains("bob/app"));
    // Wrong credentials are still a sign-in prompt.
    let (status, headers, _) = get(&served, "/v1/images", Some("mallory")).await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
}
