//! The pinned syft and grype with the Grype DB fixture: the database is valid and
//! offline, and scanning the fixture images finds exactly the advisories that
//! testdata/grypedb/providers holds for their packages.

use std::collections::BTreeSet;

use crate::common::{push_fixture, run_ok, scanner, Registry};
use serde_json::Value;

/// `(vulnerability id, package name, installed version)` of every match.
fn matches(grype_json: &[u8]) -> BTreeSet<(String, String, String)> {
    let v: Value = serde_json::from_slice(grype_json).unwrap();
    v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["vulnerability"]["id"].as_str().unwrap().to_string(),
                m["artifact"]["name"].as_str().unwrap().to_string(),
                m["artifact"]["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[test]
fn the_grype_db_fixture_is_valid_and_pinned_in_time() {
    let out = run_ok(scanner("grype").args(["db", "status", "-o", "json"]));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["valid"], true, "{status}");
    assert!(
        status["schemaVersion"].as_str().unwrap().starts_with("v6."),
        "{status}"
    );
    // testdata/grypedb stamps the requested build time, not the wall clock.
    assert_eq!(status["built"], "2026-11-01T00:00:00Z", "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_images_give_the_expected_matches() {
    let registry = Registry::distribution(None);
    let client = registry.client();
    for name in ["debian", "alpine", "lang"] {
        push_fixture(&client, name).await;
    }
    let debian = set(&[
        ("CVE-2023-4911", "libc6", "2.36-9+deb12u1"),
        ("CVE-2023-4911", "libc-bin", "2.36-9+deb12u1"),
        ("CVE-2023-5363", "openssl", "3.0.11-1~deb12u1"),
        ("CVE-2023-5363", "libssl3", "3.0.11-1~deb12u1"),
        ("CVE-2023-38545", "curl", "7.88.1-10+deb12u1"),
        ("CVE-2023-38545", "libcurl4", "7.88.1-10+deb12u1"),
        ("CVE-2005-2541", "tar", "1.34+dfsg-1.2+deb12u1"),
    ]);
    let alpine = set(&[
        ("CVE-2024-2511", "libcrypto3", "3.1.4-r5"),
        ("CVE-2024-2511", "libssl3", "3.1.4-r5"),
    ]);
    let app = set(&[
        ("GHSA-j8r2-6x86-q33q", "requests", "2.30.0"),
        ("GHSA-35jh-r3h4-6jhm", "lodash", "4.17.20"),
        ("GHSA-xvch-5gv4-984h", "minimist", "1.2.5"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    for (image, platform, expected) in [
        ("fixtures/debian:12", "linux/amd64", &debian),
        ("fixtures/alpine:3.19", "linux/amd64", &alpine),
        ("fixtures/alpine:3.19", "linux/arm64", &alpine),
        ("fixtures/app:1.0.0", "linux/amd64", &app),
    ] {
        let source = format!("registry:{}/{image}", registry.host);
        let sbom = dir.path().join("sbom.syft.json");
        run_ok(scanner("syft").args([
            &source,
            "--platform",
            platform,
            "-q",
            "-o",
            &format!("syft-json={}", sbom.display()),
        ]));
        let via_sbom =
            run_ok(scanner("grype").args([&format!("sbom:{}", sbom.display()), "-o", "json"]));
        assert_eq!(
            &matches(&via_sbom.stdout),
            expected,
            "{image} {platform} through syft's SBOM"
        );
        // grype built against the pinned syft catalogues the image the same way.
        let direct = run_ok(scanner("grype").args([&source, "--platform", platform, "-o", "json"]));
        assert_eq!(
            &matches(&direct.stdout),
            expected,
            "{image} {platform} scanned by grype itself"
        );
    }
}

#[test]
fn scanners_see_no_secrets_and_die_with_refcat() {
    let registry = Registry::zot();
    crate::common::published::tokio_run(push_fixture(&registry.client(), "alpine"));
    let keys = tempfile::tempdir().unwrap();
    crate::common::write_keys(keys.path());
    let seen = tempfile::tempdir().unwrap();
    let mut publish = crate::common::refcat_publish(keys.path());
    publish
        .env("REFCAT_SYFT", crate::common::observed_syft(seen.path(), 0))
        .env("REFCAT_PASSWORD", "registry-pw-1")
        .env("REFCAT_WEBHOOK_SECRET", "webhook-secret-2")
        .env("SYFT_PARALLELISM", "2")
        .args(["--platform", "linux/amd64"])
        .arg(format!("{}/fixtures/alpine:3.19", registry.host));
    run_ok(&mut publish);
    let env = std::fs::read_to_string(seen.path().join("env")).unwrap();
    for secret in [
        crate::common::KEY_PASSWORD,
        "registry-pw-1",
        "webhook-secret-2",
    ] {
        assert!(!env.contains(secret), "syft saw {secret}");
    }
    assert!(env.contains("SYFT_PARALLELISM=2"), "{env}");

    // Killed mid-scan, refcat takes its scanner with it.
    let pid_file = seen.path().join("pid");
    std::fs::remove_file(&pid_file).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut publish = crate::common::refcat_publish(keys.path());
    let mut child = publish
        .env("TMPDIR", tmp.path())
        .env("REFCAT_SYFT", crate::common::observed_syft(seen.path(), 60))
        .args(["--force", "--platform", "linux/amd64"])
        .arg(format!("{}/fixtures/alpine:3.19", registry.host))
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(start.elapsed().as_secs() < 60, "syft never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Running, not a zombie waiting for a reaper.
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(") ")
                .next()
                .is_some_and(|s| !s.starts_with('Z'))
        })
    };
    let start = std::time::Instant::now();
    while alive() && start.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!alive(), "the scanner {pid} outlived refcat");

    // syft unpacked into refcat's scratch directory, which the next start removes.
    let env = std::fs::read_to_string(seen.path().join("env")).unwrap();
    let scratch = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("refcat-scan-")
            })
            .collect()
    };
    let left = scratch(tmp.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        env.contains(&format!("TMPDIR={}", left[0].display())),
        "{env}"
    );
    let mut again = crate::common::refcat_publish(keys.path());
    again
        .env("TMPDIR", tmp.path())
        .args(["--dry-run", "--platform", "linux/amd64"])
        .arg(format!("{}/fixtures/alpine:3.19", registry.host));
    run_ok(&mut again);
    assert!(scratch(tmp.path()).is_empty(), "the stale scratch stayed");
}
