//! Paging, auth and bad input, against real registries.

use crate::common;

use crate::common::{push_fixture, Kind, Registry};
use refcat::reference::{RepositoryName, Tag, Target};
use refcat::registry::{RegistryError, RequestKind};

async fn many_tags(kind: Kind) {
    let registry = Registry::start(kind);
    let client = registry.client_with_page_size(7);
    let image = push_fixture(&client, "debian").await;
    for i in 0..40 {
        let tag: Tag = format!("t{i:03}").parse().unwrap();
        client
            .put_manifest(
                &image.repository,
                &Target::Tag(tag),
                &image.top.media_type,
                image.top.bytes.clone(),
            )
            .await
            .unwrap();
    }
    let before = client.counter().of_kind(RequestKind::Tags);
    let tags = client.list_tags(&image.repository, None).await.unwrap();
    let pages = client.counter().of_kind(RequestKind::Tags) - before;
    assert_eq!(tags.len(), 42, "40 pushed plus the fixture's two");
    if kind == Kind::Distribution {
        assert_eq!(
            pages, 1,
            "distribution 2.8 ignores n on tags and returns everything at once"
        );
    } else {
        assert!(
            pages >= 6,
            "42 tags at 7 per page take at least 6 requests, took {pages}"
        );
    }
    if kind == Kind::Zot {
        // zot pages with `Link` and refuses a `last` that is not an existing tag; the
        // client's answers below hold all the same.
        let tags_url = format!("http://{}/v2/{}/tags/list", registry.host, image.repository);
        let page = reqwest::get(format!("{tags_url}?n=7")).await.unwrap();
        let link = page.headers()["link"].to_str().unwrap().to_string();
        assert!(
            link.contains("last=t004") && link.contains("rel=\"next\""),
            "{link}"
        );
        let unknown = reqwest::get(format!("{tags_url}?n=7&last=t0355"))
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404);
    }
    // `last` works on both, even where the registry ignores it or 404s an unknown last.
    let after: Tag = "t035".parse().unwrap();
    let rest = client
        .list_tags(&image.repository, Some(&after))
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(Tag::as_str).collect::<Vec<_>>(),
        ["t036", "t037", "t038", "t039"]
    );
    let unknown: Tag = "t0355".parse().unwrap();
    assert_eq!(
        client
            .list_tags(&image.repository, Some(&unknown))
            .await
            .unwrap()
            .len(),
        4
    );

    for i in 0..15 {
        let repo: RepositoryName = format!("many/r{i:02}").parse().unwrap();
        let mut copy = image.clone();
        copy.repository = repo;
        crate::fixture::push(&client, &copy).await.unwrap();
    }
    let before = client.counter().of_kind(RequestKind::Catalog);
    let repos = client.list_repositories().await.unwrap();
    assert_eq!(repos.len(), 16);
    let catalog_pages = client.counter().of_kind(RequestKind::Catalog) - before;
    assert!(
        catalog_pages >= 3,
        "16 repositories at 7 per page, took {catalog_pages}"
    );
    if kind == Kind::Zot {
        let page = reqwest::get(format!("http://{}/v2/_catalog?n=7", registry.host))
            .await
            .unwrap();
        let link = page.headers()["link"].to_str().unwrap().to_string();
        assert!(
            link.contains("n=7") && link.contains("rel=\"next\""),
            "{link}"
        );
    }
}

#[tokio::test]
async fn paging_lists_everything_on_zot() {
    many_tags(Kind::Zot).await;
}

#[tokio::test]
async fn paging_lists_everything_on_distribution() {
    many_tags(Kind::Distribution).await;
}

const PASSWORD: &str = "pa55-Very-Secret";

#[tokio::test]
async fn htpasswd_auth_from_flags_and_docker_config_on_zot() {
    htpasswd_auth(Kind::Zot).await;
}

#[tokio::test]
async fn htpasswd_auth_from_flags_and_docker_config_on_distribution() {
    htpasswd_auth(Kind::Distribution).await;
}

async fn htpasswd_auth(kind: Kind) {
    let registry = Registry::start_with_auth(kind, "alice", PASSWORD);
    let repo: RepositoryName = "fixtures/debian".parse().unwrap();

    let err = registry.client().list_tags(&repo, None).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");

    let client = registry.client_as("alice", PASSWORD);
    let image = push_fixture(&client, "debian").await;
    assert_eq!(
        client
            .list_tags(&image.repository, None)
            .await
            .unwrap()
            .len(),
        2
    );

    let wrong = registry
        .client_as("alice", "not-it")
        .list_tags(&repo, None)
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, RegistryError::Unauthorized { .. }),
        "{wrong}"
    );
    assert!(!format!("{wrong} {wrong:?} {client:?}").contains(PASSWORD));

    let reference = format!("{}/fixtures/debian:12", registry.host);
    // No credentials: exit 4, a hint, and no password anywhere.
    let out = common::refcat()
        .args(["discover", &reference])
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires credentials"));

    // From --username and --password-stdin, with verbose logging on.
    let mut child = common::refcat()
        .args([
            "-vv",
            "discover",
            "--username",
            "alice",
            "--password-stdin",
            &reference,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(PASSWORD.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains(&image.top.digest.to_string()));
    assert!(!all.contains(PASSWORD));

    // From a docker config.json.
    let dir = tempfile::tempdir().unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    std::fs::write(
        dir.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, registry.host),
    )
    .unwrap();
    let out = common::refcat()
        .args(["-vv", "discover", "--format", "json", &reference])
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(PASSWORD));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&auth));
}

#[test]
fn bad_references_are_refused_before_any_request() {
    // Port 9 (discard) has no registry: a request would fail with a connection error,
    // so a name error proves none was made.
    for (input, expect) in [
        ("127.0.0.1:9/../x", "invalid repository name"),
        ("127.0.0.1:9/Upper/case", "invalid repository name"),
        ("127.0.0.1:9/a//b", "empty path component"),
        ("127.0.0.1:9/a@sha256:1234", "malformed digest"),
        ("127.0.0.1:9/a:-bad", "invalid tag"),
    ] {
        let out = common::refcat().args(["discover", input]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{input}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{input}: {err}");
        assert!(!err.contains("cannot reach"), "{input}: {err}");
    }
    let long = format!("127.0.0.1:9/{}", "a".repeat(300));
    let out = common::refcat().args(["discover", &long]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("longer than 255 characters"));
}

#[tokio::test]
async fn unknown_tag_is_not_found() {
    let registry = Registry::start(Kind::Zot);
    let out = common::refcat()
        .args(["discover", &format!("{}/nothing/here:1", registry.host)])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

/// Pushes of one blob to one repository at the same time make one upload: distribution
/// 2.8 can lose a blob that two sessions commit at once, and then refuses the manifest
/// that names it (`DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN`).
async fn one_blob_pushed_at_once_is_uploaded_once(kind: Kind) {
    let registry = Registry::start(kind);
    let client = registry.client();
    let repository: RepositoryName = "concurrent/blob".parse().unwrap();
    let data = bytes::Bytes::from(vec![7u8; 256 * 1024]);
    let digest = refcat::digest::sha256(&data);
    let before = client.counter().of_kind(RequestKind::Upload);
    let pushes = (0..16).map(|_| client.push_blob(&repository, &digest, data.clone()));
    futures_util::future::try_join_all(pushes).await.unwrap();
    let uploads = client.counter().of_kind(RequestKind::Upload) - before;
    // One monolithic POST, or a POST and its PUT.
    assert!(
        (1..=2).contains(&uploads),
        "16 pushes at once of one blob made {uploads} upload requests"
    );
    assert!(client.blob_exists(&repository, &digest).await.unwrap());
    // Once it is there, an explicit push still uploads: it is how a lost blob is
    // pushed again.
    client
        .push_blob(&repository, &digest, data.clone())
        .await
        .unwrap();
    assert!(client.counter().of_kind(RequestKind::Upload) - before > uploads);
}

#[tokio::test]
async fn one_blob_pushed_at_once_is_uploaded_once_on_distribution() {
    one_blob_pushed_at_once_is_uploaded_once(Kind::Distribution).await;
}

#[tokio::test]
async fn one_blob_pushed_at_once_is_uploaded_once_on_zot() {
    one_blob_pushed_at_once_is_uploaded_once(Kind::Zot).await;
}
