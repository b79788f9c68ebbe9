//! A pusher cannot lend an image another image's provenance: a validly signed
//! attestation about one image, copied onto another (as cosign's `.att` tag, or as an
//! in-toto referrer), is no provenance of it, on zot and on distribution 2.8.

use std::process::Command;

use refcat::reference::{RepositoryName, Target};
use serde_json::Value;

use crate::common::attest::{cosign_attest, slsa_v1};
use crate::common::serving::ServeProcess;
use crate::common::{push_fixture, run_ok, tool, write_keys, Kind, Registry};

/// The linux/amd64 manifest digest of `repository:tag`, as the catalog reads it.
async fn amd64(serve: &ServeProcess, repository: &str, tag: &str) -> String {
    let (status, details) = serve
        .get(&format!("/v1/images/{repository}/details/{tag}"))
        .await;
    assert_eq!(status, 200, "{details}");
    details["platforms"]["linux/amd64"]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn an_attestation_about_another_image_is_not_its_provenance(kind: Kind) {
    let registry = Registry::start(kind);
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let client = registry.client();
    push_fixture(&client, "alpine").await;
    push_fixture(&client, "debian").await;
    let host = registry.host.clone();
    let public = keys.path().join("refcat.pub");
    let checking = ServeProcess::start(&host, &["--key", public.to_str().unwrap()]).await;
    let debian = amd64(&checking, "fixtures/debian", "12").await;
    let alpine = amd64(&checking, "fixtures/alpine", "3.19").await;
    let hex = |digest: &str| digest.trim_start_matches("sha256:").to_string();

    // Whoever holds the trusted key attests debian, as cosign does.
    let predicate = slsa_v1(
        "https://github.com/example/debian",
        "89abcdef0123456789abcdef0123456789abcdef",
    );
    let at = format!("{host}/fixtures/debian@{debian}");
    cosign_attest(keys.path(), "refcat.key", &at, &predicate, false);

    // A pusher copies that signed attestation onto alpine's amd64 manifest: as its
    // `.att` tag, and as an in-toto referrer of it.
    run_ok(Command::new(tool("oras")).args([
        "copy",
        "--from-plain-http",
        "--to-plain-http",
        &format!("{host}/fixtures/debian:sha256-{}.att", hex(&debian)),
        &format!("{host}/fixtures/alpine:sha256-{}.att", hex(&alpine)),
    ]));
    let debian_repo: RepositoryName = "fixtures/debian".parse().unwrap();
    let att: refcat::reference::Tag = format!("sha256-{}.att", hex(&debian)).parse().unwrap();
    let fetched = client
        .get_manifest(&debian_repo, &Target::Tag(att))
        .await
        .unwrap();
    let manifest: Value = serde_json::from_slice(&fetched.bytes).unwrap();
    let layer = &manifest["layers"][0];
    let envelope = client
        .get_blob(
            &debian_repo,
            &layer["digest"].as_str().unwrap().parse().unwrap(),
            None,
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("envelope.json"), &envelope).unwrap();
    let dsse = layer["mediaType"].as_str().unwrap();
    run_ok(Command::new(tool("oras")).current_dir(dir.path()).args([
        "attach",
        "--plain-http",
        "--artifact-type",
        dsse,
        &format!("{host}/fixtures/alpine@{alpine}"),
        &format!("envelope.json:{dsse}"),
    ]));

    // Signed with the trusted key, and about debian: debian's provenance, verified...
    let checking = ServeProcess::start(&host, &["--key", public.to_str().unwrap()]).await;
    let (status, view) = checking
        .get("/v1/images/fixtures/debian/provenance/12")
        .await;
    assert_eq!(status, 200, "{view}");
    let own = &view["platforms"]["linux/amd64"]["provenance"];
    assert_eq!(own["signature"]["verdict"], "verified", "{view}");
    // ...and not alpine's, in either copy.
    let (status, view) = checking
        .get("/v1/images/fixtures/alpine/provenance/3.19")
        .await;
    assert_eq!(status, 200, "{view}");
    let lent = &view["platforms"]["linux/amd64"];
    assert_eq!(lent["provenance"], Value::Null, "{view}");
    assert!(
        lent["reason"]
            .as_str()
            .unwrap()
            .contains("about another image"),
        "{lent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attestation_about_another_image_is_not_its_provenance_on_zot() {
    an_attestation_about_another_image_is_not_its_provenance(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attestation_about_another_image_is_not_its_provenance_on_distribution() {
    an_attestation_about_another_image_is_not_its_provenance(Kind::Distribution).await;
}
