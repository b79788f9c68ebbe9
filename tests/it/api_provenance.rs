//! The provenance view against real attestations: a BuildKit attestation manifest in an
//! index, `cosign attest` in both of cosign's layouts, and an in-toto statement attached
//! with `oras attach`; each one's signature checked with the configured key.

use crate::common;

use std::process::Command;

use crate::common::attest::{cosign_attest, slsa_v1};
use crate::common::served::{serve, start_api};
use crate::common::{run_ok, tool, Kind};
use refcat::web::AppState;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provenance_is_read_from_cosign_and_in_toto_attestations() {
    let served = serve(Kind::Zot).await;
    let host = served.registry.host.clone();
    let dir = served.keys.path();
    let platform =
        |view: &Value, p: &str| view["platforms"][p]["digest"].as_str().unwrap().to_string();
    let debian = platform(
        &served.ok("/v1/images/fixtures/debian/details/12").await,
        "linux/amd64",
    );
    let alpine = served.ok("/v1/images/fixtures/alpine/details/3.19").await;
    let (alpine_amd64, alpine_arm64) = (
        platform(&alpine, "linux/amd64"),
        platform(&alpine, "linux/arm64/v8"),
    );
    let app = platform(
        &served.ok("/v1/images/fixtures/app/details/1.0.0").await,
        "linux/amd64",
    );

    // debian: cosign's legacy .att tag; alpine/amd64: a Sigstore bundle referrer, both
    // signed with the key the API trusts. app: a .att signed with another key.
    let predicate = slsa_v1(
        "https://github.com/example/debian",
        "89abcdef0123456789abcdef0123456789abcdef",
    );
    cosign_attest(
        dir,
        "refcat.key",
        &format!("{host}/fixtures/debian@{debian}"),
        &predicate,
        false,
    );
    let predicate = slsa_v1(
        "https://github.com/example/alpine",
        "0123456789abcdef0123456789abcdef01234567",
    );
    cosign_attest(
        dir,
        "refcat.key",
        &format!("{host}/fixtures/alpine@{alpine_amd64}"),
        &predicate,
        true,
    );
    let other = tempfile::tempdir().unwrap();
    common::write_keys(other.path());
    let predicate = slsa_v1(
        "https://github.com/example/app",
        "fedcba9876543210fedcba9876543210fedcba98",
    );
    cosign_attest(
        other.path(),
        "refcat.key",
        &format!("{host}/fixtures/app@{app}"),
        &predicate,
        false,
    );

    // alpine/arm64: a bare in-toto statement, attached the way users attach files.
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": "fixtures/alpine", "digest": { "sha256": alpine_arm64.trim_start_matches("sha256:") } }],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": slsa_v1("https://github.com/example/alpine-arm", "1111111111111111111111111111111111111111"),
    });
    std::fs::write(dir.join("statement.json"), statement.to_string()).unwrap();
    run_ok(
        Command::new(tool("oras"))
            .current_dir(dir)
            .args([
                "attach",
                "--plain-http",
                "--artifact-type",
                "application/vnd.in-toto+json",
            ])
            .arg(format!("{host}/fixtures/alpine@{alpine_arm64}"))
            .arg("statement.json:application/vnd.in-toto+json"),
    );

    let key = refcat::sign::PublicKey::from_pem(
        &std::fs::read_to_string(dir.join("refcat.pub")).unwrap(),
    )
    .unwrap();
    let api = |require| {
        let client = served.registry.cached_client(Default::default());
        let state = AppState::new(
            client,
            refcat::trust::Trust::checking(vec![key.clone()], require).unwrap(),
        );
        start_api(state)
    };
    let get = |base: String, path: String| async move {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json::<Value>().await.unwrap()
    };
    let reporting = api(false).await;
    let view = get(
        reporting.clone(),
        "/v1/images/fixtures/debian/provenance/12".into(),
    )
    .await;
    let found = &view["platforms"]["linux/amd64"]["provenance"];
    assert_eq!(found["foundIn"], "cosign-attestation", "{view}");
    assert_eq!(found["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(found["builderId"], "https://github.com/actions/runner");
    assert_eq!(
        found["buildType"],
        "https://actions.github.io/buildtypes/workflow/v1"
    );
    assert_eq!(
        found["sourceRepository"],
        "git+https://github.com/example/debian@refs/heads/main"
    );
    assert_eq!(
        found["sourceRevision"],
        "89abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(found["invocation"]["workflow"]["ref"], "refs/heads/main");
    assert_eq!(found["startedOn"], "2026-11-01T10:00:00Z");
    assert_eq!(found["finishedOn"], "2026-11-01T10:04:00Z");
    assert_eq!(found["signature"]["verdict"], "verified");

    let view = get(
        reporting.clone(),
        "/v1/images/fixtures/alpine/provenance/3.19".into(),
    )
    .await;
    let amd64 = &view["platforms"]["linux/amd64"]["provenance"];
    assert_eq!(amd64["foundIn"], "sigstore-bundle-referrer", "{view}");
    assert_eq!(
        amd64["sourceRevision"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(amd64["signature"]["verdict"], "verified");
    let arm64 = &view["platforms"]["linux/arm64/v8"]["provenance"];
    assert_eq!(arm64["foundIn"], "in-toto-referrer", "{view}");
    assert_eq!(
        arm64["sourceRevision"],
        "1111111111111111111111111111111111111111"
    );
    assert_eq!(arm64["signature"]["verdict"], "unsigned");

    let view = get(reporting, "/v1/images/fixtures/app/provenance/1.0.0".into()).await;
    let app_found = &view["platforms"]["linux/amd64"]["provenance"];
    assert_eq!(app_found["foundIn"], "cosign-attestation", "{view}");
    assert_eq!(app_found["signature"]["verdict"], "invalid");

    // --require-signature: only what verifies with the key is shown.
    let requiring = api(true).await;
    let view = get(
        requiring.clone(),
        "/v1/images/fixtures/alpine/provenance/3.19".into(),
    )
    .await;
    assert_eq!(
        view["platforms"]["linux/amd64"]["provenance"]["foundIn"],
        "sigstore-bundle-referrer"
    );
    assert_eq!(
        view["platforms"]["linux/arm64/v8"]["provenance"],
        Value::Null,
        "{view}"
    );
    assert!(view["platforms"]["linux/arm64/v8"]["reason"]
        .as_str()
        .unwrap()
        .contains("signature that verifies"));
    let view = get(requiring, "/v1/images/fixtures/app/provenance/1.0.0".into()).await;
    assert_eq!(
        view["platforms"]["linux/amd64"]["provenance"],
        Value::Null,
        "{view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provenance_is_read_from_buildkit_attestations() {
    let served = serve(Kind::Distribution).await;
    let none = served.ok("/v1/images/fixtures/debian/provenance/12").await;
    let amd64 = &none["platforms"]["linux/amd64"];
    assert_eq!(amd64["provenance"], Value::Null);
    assert!(amd64["reason"]
        .as_str()
        .unwrap()
        .contains("no SLSA provenance"));

    // An index with a BuildKit attestation manifest for its amd64 platform.
    let client = served.registry.client();
    let repository: refcat::reference::RepositoryName = "fixtures/alpine".parse().unwrap();
    // BuildKit names the platform manifest it attests, as every in-toto statement
    // names its subjects.
    let details = served.ok("/v1/images/fixtures/alpine/details/3.19").await;
    let attested = details["platforms"]["linux/amd64"]["digest"]
        .as_str()
        .unwrap();
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "subject": [{
            "name": "pkg:docker/fixtures/alpine@3.19?platform=linux%2Famd64",
            "digest": { "sha256": attested.trim_start_matches("sha256:") }
        }],
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "predicate": {
            "builder": { "id": "https://github.com/docker/buildx@v0.12.1" },
            "buildType": "https://mobyproject.org/buildkit@v1",
            "invocation": {
                "configSource": {
                    "uri": "https://example.org/alpine.git",
                    "digest": { "sha1": "0123456789abcdef0123456789abcdef01234567" },
                    "entryPoint": "Dockerfile"
                }
            },
            "metadata": {
                "buildStartedOn": "2024-01-26T00:00:00Z",
                "buildFinishedOn": "2024-01-26T00:05:00Z"
            }
        }
    });
    common::published::push_attested_index(&client, &repository, "3.19", "attested", &statement)
        .await;
    let view = served
        .ok("/v1/images/fixtures/alpine/provenance/attested")
        .await;
    let found = &view["platforms"]["linux/amd64"]["provenance"];
    assert_eq!(found["foundIn"], "buildkit-attestation");
    assert_eq!(
        found["builderId"],
        "https://github.com/docker/buildx@v0.12.1"
    );
    assert_eq!(found["buildType"], "https://mobyproject.org/buildkit@v1");
    assert_eq!(found["sourceRepository"], "https://example.org/alpine.git");
    assert_eq!(
        found["sourceRevision"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(found["startedOn"], "2024-01-26T00:00:00Z");
    assert_eq!(found["finishedOn"], "2024-01-26T00:05:00Z");
    assert_eq!(
        view["platforms"]["linux/arm64/v8"]["provenance"],
        Value::Null
    );
}
