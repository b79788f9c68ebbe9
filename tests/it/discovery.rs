//! Registries that refuse `_catalog` (Docker Hub answers 401, Harbor 403 to non-admins,
//! GHCR has none): a proxy refuses only `_catalog` in front of a real registry. Named
//! repositories need no listing; a glob is expanded from `_catalog` where it is allowed,
//! and from the webhooks a worker receives where it is not; and each refusal says what
//! to pass.

use std::time::Duration;

use axum::http::Method;

use crate::common::faults::{Fault, FaultProxy, Rule};
use crate::common::published::{check_recovered, code, output, stderr};
use crate::common::worker::{Worker, SECRET};
use crate::common::{
    free_port, push_fixture, refcat, refcat_publishing, write_keys, zot_events_to, Registry,
};

/// A proxy in front of `registry` that answers `_catalog` with `status`.
async fn catalog_refused(registry: &Registry, status: u16) -> FaultProxy {
    let proxy = FaultProxy::start(&registry.host).await;
    let code = if status == 401 {
        "UNAUTHORIZED"
    } else {
        "DENIED"
    };
    proxy.inject(Rule::new(
        Method::GET,
        "/v2/_catalog",
        usize::MAX,
        Fault::Error(status, code),
    ));
    proxy
}

const FIXTURES: [(&str, &str); 3] = [
    ("debian", "fixtures/debian:12"),
    ("alpine", "fixtures/alpine:3.19"),
    ("lang", "fixtures/app:1.0.0"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_and_serve_cover_named_repositories_without_catalog() {
    let registry = Registry::distribution(None);
    for (fixture, _) in FIXTURES {
        push_fixture(&registry.client(), fixture).await;
    }
    let proxy = catalog_refused(&registry, 403).await;
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());

    // Nothing named: the refusal says what to pass.
    let mut walk = refcat_publishing("backfill", keys.path());
    walk.arg(&proxy.host);
    let out = output(walk).await;
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--repositories-file"),
        "{}",
        stderr(&out)
    );
    // A glob cannot be expanded without a listing: said, with the names to pass.
    let mut walk = refcat_publishing("backfill", keys.path());
    walk.args([&proxy.host, "--repository", "fixtures/*"]);
    let out = output(walk).await;
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot expand fixtures/* without the registry's _catalog"),
        "{}",
        stderr(&out)
    );

    // Named in a file, and on the command line: every one published, no listing asked.
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        list.path(),
        "# the team's images\nfixtures/debian\nfixtures/alpine\n",
    )
    .unwrap();
    let catalog_before = proxy.seen(Method::GET, "/v2/_catalog").len();
    let mut walk = refcat_publishing("backfill", keys.path());
    walk.args([
        &proxy.host,
        "--repository",
        "fixtures/app",
        "--format",
        "json",
    ])
    .arg("--repositories-file")
    .arg(list.path());
    let out = output(walk).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let published = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["outcome"] == "published")
        .count();
    assert_eq!(published, 3, "{summary}");
    assert_eq!(
        proxy.seen(Method::GET, "/v2/_catalog").len(),
        catalog_before
    );
    for (_, image) in FIXTURES {
        check_recovered(&registry, keys.path(), image).await;
    }

    // serve: the directory is the named repositories.
    let port = free_port();
    let mut serve = refcat()
        .args([
            "serve",
            &proxy.host,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--repository", "fixtures/alpine,fixtures/debian"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v1/images");
    let mut directory = serde_json::Value::Null;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(&url).await {
            directory = response.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = serve.kill();
    let _ = serve.wait();
    let names: Vec<&str> = directory["images"]
        .as_array()
        .unwrap_or_else(|| panic!("{directory}"))
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fixtures/alpine", "fixtures/debian"]);
    assert_eq!(
        proxy.seen(Method::GET, "/v2/_catalog").len(),
        catalog_before
    );
}

#[test]
fn a_worker_expands_a_glob_from_the_webhooks_it_receives() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/events");
    let registry = Registry::zot_with(|config, _| zot_events_to(config, &url, SECRET));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = runtime.block_on(catalog_refused(&registry, 401));
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let worker = Worker::start_on(
        &proxy.host,
        keys.path(),
        port,
        &[
            ("REFCAT_REPOSITORY", "fixtures/*".as_ref()),
            ("REFCAT_AGGREGATE_REPOSITORY", "refcat/catalog".as_ref()),
        ],
    );
    runtime.block_on(async {
        for (fixture, _) in FIXTURES {
            push_fixture(&registry.client(), fixture).await;
        }
        // Outside the glob: its events are ignored.
        let mut other =
            crate::fixture::build(&crate::common::testdata().join("images/alpine")).unwrap();
        other.repository = "other/alpine".parse().unwrap();
        other.tags = vec!["1".parse().unwrap()];
        crate::fixture::push(&registry.client(), &other)
            .await
            .unwrap();
    });
    worker.wait_for("published", 3, Duration::from_secs(300));
    worker.wait_idle(Duration::from_secs(120));
    assert_eq!(worker.jobs("published"), 3);
    assert_eq!(worker.jobs("failed"), 0);
    runtime.block_on(async {
        for (_, image) in FIXTURES {
            check_recovered(&registry, keys.path(), image).await;
        }
        let other = refcat::registry::Client::new(refcat::registry::ClientConfig::new(
            registry.host.clone(),
        ));
        let subject = crate::common::published::subjects(
            &other,
            &format!("{}/other/alpine:1", registry.host),
        )
        .await;
        let listed = other
            .referrers(
                &"other/alpine".parse().unwrap(),
                &subject[0].descriptor.digest,
                None,
            )
            .await
            .unwrap();
        assert!(listed.is_empty(), "outside the glob: {listed:?}");
    });

    // The worker stored what it found, signed; a backfill with the same glob reads it
    // where `_catalog` is refused, and publishes a tag pushed while no worker ran.
    let list = wait_for_repository_list(&registry);
    assert_eq!(
        list,
        ["fixtures/alpine", "fixtures/app", "fixtures/debian"],
        "the repositories found"
    );
    drop(worker);
    runtime.block_on(async {
        let mut edge =
            crate::fixture::build(&crate::common::testdata().join("images/debian")).unwrap();
        edge.repository = "fixtures/alpine".parse().unwrap();
        edge.tags = vec!["edge".parse().unwrap()];
        crate::fixture::push(&registry.client(), &edge)
            .await
            .unwrap();
        let mut walk = refcat_publishing("backfill", keys.path());
        walk.args([
            &proxy.host,
            "--repository",
            "fixtures/*",
            "--format",
            "json",
        ])
        .args(["--aggregate-repository", "refcat/catalog"]);
        let out = output(walk).await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // Every image of every fixture was checked: debian, alpine, app and the new one.
        assert_eq!(summary["checked"], 4, "{summary}");
        let images = summary["images"].as_array().unwrap();
        assert_eq!(images.len(), 1, "{summary}");
        assert_eq!(images[0]["outcome"], "published", "{summary}");
        check_recovered(&registry, keys.path(), "fixtures/alpine:edge").await;
    });
}

/// The repositories in the worker's stored `refcat-repositories`, once it is there.
fn wait_for_repository_list(registry: &Registry) -> Vec<String> {
    let client = registry.client();
    let repositories = refcat::catalog::repositories::Repositories::new(
        vec!["fixtures/*".parse().unwrap()],
        Some("refcat/catalog".parse().unwrap()),
        refcat::trust::Trust::show_unverified(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for _ in 0..300 {
        if let Some(list) = runtime.block_on(repositories.stored(&client)).unwrap() {
            return list.document.get().repositories.iter().cloned().collect();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no refcat-repositories after 30 s");
}
