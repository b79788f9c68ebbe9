//! A registry serving TLS with a certificate from a private CA, reached on loopback
//! without --plain-http: every command works with `--ca-file` (syft and grype included,
//! since publish runs them), fails with a clear certificate error without it, and
//! `--insecure` skips the check loudly.

use std::process::{Command, Output};
use std::time::Duration;

use crate::common::published::{code, stderr};
use crate::common::tls::TestCa;
use crate::common::worker::Worker;
use crate::common::{free_port, push_fixture, refcat, refcat_publishing, write_keys, Registry};

/// Runs `cmd` off the async runtime.
async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn untrusted(out: &Output) {
    assert_eq!(code(out), 5, "{}", stderr(out));
    let said = stderr(out);
    assert!(said.contains("is not trusted"), "{said}");
    assert!(said.contains("--ca-file"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_trusts_a_private_ca_only_when_told() {
    let ca = TestCa::new();
    let registry = Registry::zot_tls(&ca);
    let client = ca.client(&registry.host);
    push_fixture(&client, "alpine").await;
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let alpine = format!("{}/fixtures/alpine:3.19", registry.host);
    let ca_file = ca.ca.to_str().unwrap().to_string();

    // publish: without the CA the first request fails, before any scan.
    let mut publish = refcat_publishing("publish", keys.path());
    publish.arg(&alpine);
    untrusted(&output(publish).await);
    // With it, syft reads the image over TLS and grype matches: a signed set per platform.
    let mut publish = refcat_publishing("publish", keys.path());
    publish.args(["--ca-file", &ca_file, &alpine]);
    let out = output(publish).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let published = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(published.matches("): published").count(), 2, "{published}");

    // verify and discover.
    let public = keys.path().join("refcat.pub");
    let mut verify = refcat();
    verify.arg("verify").arg("--key").arg(&public).arg(&alpine);
    untrusted(&output(verify).await);
    let mut verify = refcat();
    verify
        .args(["verify", "--ca-file", &ca_file, "--key"])
        .arg(&public)
        .arg(&alpine);
    let out = output(verify).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("verified")
            .count(),
        6
    );
    let mut discover = refcat();
    discover.args(["discover", &alpine]);
    untrusted(&output(discover).await);
    let mut discover = refcat();
    discover.args([
        "discover",
        "--ca-file",
        &ca_file,
        "--format",
        "json",
        "--platform",
        "linux/amd64",
        &alpine,
    ]);
    let out = output(discover).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("application/vnd.syft+json"));

    // --insecure skips the check, and says so.
    let mut discover = refcat();
    discover.args(["discover", "--insecure", &alpine]);
    let out = output(discover).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("NOT checked"), "{}", stderr(&out));

    // serve: refuses to start without the CA, serves the signed set with it.
    let port = free_port();
    let mut serve = refcat();
    serve.args([
        "serve",
        &registry.host,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    untrusted(&output(serve).await);
    let mut serve = refcat();
    let mut server = serve
        .args(["serve", &registry.host, "--ca-file", &ca_file, "--key"])
        .arg(&public)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v1/images/fixtures/alpine/tags");
    let mut tags = None;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(&url).await {
            tags = Some((response.status(), response.text().await.unwrap()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    let (status, body) = tags.expect("serve answered");
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["tags"][0]["platforms"][0]["signed"], true, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_walks_a_tls_registry_with_the_ca() {
    let ca = TestCa::new();
    let registry = Registry::zot_tls(&ca);
    push_fixture(&ca.client(&registry.host), "debian").await;
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());

    let mut worker = refcat_publishing("worker", keys.path());
    worker
        .args([
            &registry.host,
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env("REFCAT_WEBHOOK_SECRET", crate::common::worker::SECRET);
    untrusted(&output(worker).await);

    let ca_file = ca.ca.as_os_str().to_owned();
    let (registry, published) = tokio::task::spawn_blocking({
        let keys = keys.path().to_path_buf();
        move || {
            let env = [("REFCAT_CA_FILE", ca_file.as_os_str())];
            let worker = Worker::start(&registry, &keys, free_port(), &env);
            worker.wait_idle(Duration::from_secs(240));
            let published = worker.jobs("published");
            drop(worker);
            (registry, published)
        }
    })
    .await
    .unwrap();
    assert_eq!(published, 1);
    let mut verify = refcat();
    verify
        .args(["verify", "--ca-file"])
        .arg(&ca.ca)
        .arg("--key")
        .arg(keys.path().join("refcat.pub"))
        .arg(format!("{}/fixtures/debian:12", registry.host));
    let out = output(verify).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}
