//! Odd or hostile registries: refcat returns errors or leaves things out, and never
//! falls over.

use refcat::artifact::{ArtifactBuilder, ArtifactLayer};
use refcat::media_types::{OCI_MANIFEST, SYFT_JSON};
use refcat::reference::{RepositoryName, Target};

use crate::common::{push_fixture, Kind, Registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sha512_subject_gets_a_truncated_tag_schema_tag() {
    let registry = Registry::start(Kind::Distribution);
    let client = registry.client();
    push_fixture(&client, "alpine").await;
    let repository: RepositoryName = "fixtures/alpine".parse().unwrap();
    // A subject named by a sha512 digest (distribution 2.8 stores only sha256
    // manifests, but an artifact may name any subject).
    let bytes = bytes::Bytes::from_static(b"a manifest stored elsewhere");
    let hex: String = {
        use sha2::Digest as _;
        sha2::Sha512::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let sha512 = refcat::digest::parse(&format!("sha512:{hex}")).unwrap();
    let artifact = ArtifactBuilder::new(SYFT_JSON)
        .subject(refcat::oci::Descriptor::new(
            OCI_MANIFEST,
            sha512.clone(),
            bytes.len() as u64,
        ))
        .layer(ArtifactLayer {
            media_type: SYFT_JSON.into(),
            data: bytes::Bytes::from_static(b"{}"),
            title: "sbom.syft.json".into(),
        })
        .build();
    client.push_artifact(&repository, &artifact).await.unwrap();

    // The spec's schema: the algorithm, then the first 64 hex characters.
    let tag = format!("sha512-{}", &hex[..64]);
    let index = client
        .get_manifest(&repository, &Target::Tag(tag.parse().unwrap()))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&index.bytes).contains(&artifact.digest.to_string()));
    let listed = client.referrers(&repository, &sha512, None).await.unwrap();
    assert_eq!(listed.len(), 1);

    // A signature check of a sha512 artifact finds no bundle and no `.sig` tag (cosign's
    // would be 139 characters): unsigned, not a panic.
    let key = refcat::sign::KeyPair::generate().public_key();
    let trust = refcat::trust::Trust::checking(vec![key], false).unwrap();
    let verdict = trust.verdict(&client, &repository, &sha512).await.unwrap();
    assert_eq!(verdict, refcat::trust::Verdict::Unsigned);
}

/// What a token service was sent.
#[derive(Clone, Debug, Default)]
struct TokenRequest {
    method: String,
    query: String,
    authorization: Option<String>,
    body: String,
}

type Seen = std::sync::Arc<std::sync::Mutex<Vec<TokenRequest>>>;

/// A token service on a free port that records each request and answers `/token` with
/// the token `t`, `/huge` with a megabyte of JSON.
async fn token_service() -> (u16, Seen) {
    use axum::extract::{Request, State};
    let seen = Seen::default();
    let record = |State(seen): State<Seen>, request: Request| async move {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        seen.lock().unwrap().push(TokenRequest {
            method: parts.method.to_string(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            authorization: parts
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string()),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        parts.uri.path().to_string()
    };
    let app = axum::Router::new()
        .route(
            "/token",
            axum::routing::any(move |state, request| async move {
                record(state, request).await;
                r#"{"token":"t"}"#.to_string()
            }),
        )
        .route(
            "/huge",
            axum::routing::any(move |state, request| async move {
                record(state, request).await;
                format!(r#"{{"token":"{}"}}"#, "a".repeat(1 << 20))
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

/// A registry front that wants a bearer token from `realm` and takes only `t`.
async fn bearer_registry(realm: String) -> String {
    let app = axum::Router::new().route(
        "/v2/",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let realm = realm.clone();
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer t") {
                    return axum::response::Response::new(axum::body::Body::from("{}"));
                }
                axum::response::Response::builder()
                    .status(401)
                    .header(
                        "www-authenticate",
                        format!(r#"Bearer realm="{realm}",service="fake""#),
                    )
                    .body(axum::body::Body::empty())
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_token_service_the_user_trusts_is_asked() {
    use refcat::registry::{Client, ClientConfig, Credentials, Secret};
    let (port, seen) = token_service().await;
    let basic = Credentials::Basic {
        username: "ci".into(),
        password: Secret::new("pa55word"),
    };
    let ping = |realm: String, credentials: Credentials, trusted: &[&str]| {
        let trusted: Vec<String> = trusted.iter().map(|t| t.to_string()).collect();
        async move {
            let mut config = ClientConfig::new(bearer_registry(realm).await);
            config.credentials = credentials;
            config.trusted_realms = trusted;
            config.max_attempts = 1;
            Client::new(config).ping().await
        }
    };
    let asked = || seen.lock().unwrap().len();
    let last = || seen.lock().unwrap().last().cloned().unwrap();

    // A realm on another host (by name) than the registry's 127.0.0.1, on the
    // registry's host but another port, or trusted by host alone (its default port): not
    // asked at all, with or without credentials, and the error says what to trust.
    let elsewhere = format!("http://localhost:{port}/token");
    let other_port = format!("http://127.0.0.1:{port}/token");
    for (realm, credentials, trusted) in [
        (&elsewhere, basic.clone(), &[][..]),
        (&other_port, basic.clone(), &[]),
        (&other_port, Credentials::Anonymous, &[]),
        (&elsewhere, basic.clone(), &["localhost"]),
    ] {
        let refused = ping(realm.clone(), credentials, trusted).await.unwrap_err();
        let said = refused.to_string();
        assert!(said.contains("--trusted-realm"), "{said}");
        assert_eq!(asked(), 0, "{realm} was asked: {:?}", last());
    }
    // Trusted by host and port: asked, and sent the credentials.
    let trusted = format!("localhost:{port}");
    ping(elsewhere, basic.clone(), &[&trusted]).await.unwrap();
    let request = last();
    assert!(request.authorization.unwrap().starts_with("Basic "));
    assert!(request.query.contains("account=ci"), "{}", request.query);

    // A refresh token is POSTed as a form, never put in the URL.
    let own = format!("127.0.0.1:{port}");
    let identity = Credentials::IdentityToken(Secret::new("refresh-me"));
    ping(other_port, identity, &[&own]).await.unwrap();
    let request = last();
    assert_eq!(request.method, "POST");
    assert!(!request.query.contains("refresh-me"), "{request:?}");
    assert!(
        request.body.contains("refresh_token=refresh-me"),
        "{request:?}"
    );

    // A token answer of a megabyte is refused, not read.
    let huge = format!("http://127.0.0.1:{port}/huge");
    let refused = ping(huge, basic, &[&own]).await.unwrap_err();
    assert!(
        refused.to_string().contains("larger than the limit"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_that_is_not_an_image_is_left_out_and_said_why() {
    let registry = Registry::zot();
    push_fixture(&registry.client(), "alpine").await;
    // A Helm chart pushed by oras beside the image.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chart.tgz"), b"not really a chart").unwrap();
    let mut push = std::process::Command::new(crate::common::tool("oras"));
    push.current_dir(dir.path()).args([
        "push",
        "--plain-http",
        "--artifact-type",
        "application/vnd.cncf.helm.config.v1+json",
        &format!("{}/fixtures/alpine:chart-0.1.0", registry.host),
        "chart.tgz:application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    ]);
    crate::common::run_ok(&mut push);

    let base = crate::common::served::start_api(refcat::web::AppState::new(
        registry.client(),
        refcat::trust::Trust::show_unverified(),
    ))
    .await;
    let get = |path: &'static str| crate::common::served::get_json(format!("{base}{path}"));
    let (status, tags) = get("/v1/images/fixtures/alpine/tags").await;
    assert_eq!(status, 200, "{tags}");
    let listed: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&"3.19") && !listed.contains(&"chart-0.1.0"),
        "{listed:?}"
    );
    assert_eq!(tags["skipped"][0]["tag"], "chart-0.1.0");
    assert!(tags["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("not a container image"));
    for path in [
        "/v1/images",
        "/v1/images/fixtures/alpine",
        "/v1/images/fixtures/alpine/history/3",
        "/v1/vulnerabilities",
    ] {
        let (status, body) = get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sbom_view_parses_once_and_refuses_bombs_and_unknown_parameters() {
    use refcat::artifact::annotations::{CREATED, FORMAT};
    use refcat::media_types::SYFT_JSON_GZIP;
    use refcat::registry::RequestKind;
    let registry = Registry::zot();
    push_fixture(&registry.client(), "alpine").await;
    let repository: RepositoryName = "fixtures/alpine".parse().unwrap();
    // On one platform of a multi-platform image, so that the view reads no config.
    let reference = format!("{}/fixtures/alpine:3.19", registry.host);
    let platforms = crate::common::published::subjects(&registry.client(), &reference).await;
    let subject = platforms
        .iter()
        .find(|p| p.platform.to_string() == "linux/amd64")
        .unwrap()
        .descriptor
        .clone();
    let syft = |created: &str, layer: ArtifactLayer| {
        ArtifactBuilder::new(SYFT_JSON)
            .subject(subject.clone())
            .annotation(CREATED, created)
            .annotation(FORMAT, "syft-json")
            .layer(layer)
            .build()
    };
    let document = serde_json::json!({ "artifacts": [
        { "name": "openssl", "version": "3.0", "type": "deb" },
        { "name": "zlib", "version": "1.3", "type": "deb" },
    ]});
    let sbom = syft(
        "2026-11-01T00:00:00Z",
        ArtifactLayer {
            media_type: SYFT_JSON.into(),
            data: serde_json::to_vec(&document).unwrap().into(),
            title: "sbom.syft.json".into(),
        },
    );
    let client = registry.client();
    client.push_artifact(&repository, &sbom).await.unwrap();

    let base = crate::common::served::start_api(refcat::web::AppState::new(
        client.clone(),
        refcat::trust::Trust::show_unverified(),
    ))
    .await;
    let get = |query: &'static str| {
        let url = format!("{base}/v1/images/fixtures/alpine/sbom/3.19{query}");
        crate::common::served::get_json(url)
    };
    // Two filters, one parse: the Syft JSON is fetched once.
    let blobs = client.counter().of_kind(RequestKind::Blob);
    let (status, view) = get("?name=ssl").await;
    assert_eq!(status, 200, "{view}");
    let (_, other) = get("?type=deb&per_page=1").await;
    assert_eq!(other["platforms"]["linux/amd64"]["total"], 2, "{other}");
    assert_eq!(client.counter().of_kind(RequestKind::Blob) - blobs, 1);

    let (status, refused) = get("?nmae=ssl").await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("nmae"),
        "{refused}"
    );

    // A newer Syft artifact whose gzip layer inflates 1000 times.
    let bomb = syft(
        "2026-11-02T00:00:00Z",
        ArtifactLayer {
            media_type: SYFT_JSON_GZIP.into(),
            data: refcat::artifact::compression::gzip(&vec![b' '; 64 * 1024 * 1024]),
            title: "sbom.syft.json.gz".into(),
        },
    );
    client.push_artifact(&repository, &bomb).await.unwrap();
    let (status, refused) = get("?page=1").await;
    assert_eq!(status, 502, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("gzip bomb"),
        "{refused}"
    );
}

#[test]
fn a_failing_credential_helpers_output_is_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("docker-credential-leaky");
    // Half-worked: the secret on stdout, then a failure. It reads the server address
    // first, as a real helper does (one that exits before refcat has written it breaks
    // the pipe, and that is another failure than the one under test).
    crate::common::write_script(
        &helper,
        "#!/bin/sh\ncat >/dev/null\necho '{\"Username\":\"ci\",\"Secret\":\"s3cret-from-helper\"'\necho 'store locked' >&2\nexit 1\n",
    );
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"credHelpers":{"127.0.0.1:9":"leaky"}}"#).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = crate::common::refcat()
        .args(["discover", "--docker-config"])
        .arg(&config)
        .arg("127.0.0.1:9/team/app:1")
        .env("PATH", path)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(!shown.contains("s3cret-from-helper"), "{shown}");
    assert!(shown.contains("store locked"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_registry_credentials_are_not_explained_to_callers() {
    let registry = Registry::start_with_auth(Kind::Zot, "catalog", "right-pw");
    let state = refcat::web::AppState::new(
        registry.client_as("catalog", "wrong-pw"),
        refcat::trust::Trust::show_unverified(),
    );
    let base = crate::common::served::start_api(state).await;
    let response = reqwest::get(format!("{base}/v1/images")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body = response.text().await.unwrap();
    assert!(!body.contains(&registry.host), "{body}");
    assert!(!body.contains("catalog\""), "{body}");
}
