//! `refcat publish` end to end, with the real syft, grype (fixture DB), oras and cosign,
//! on a registry with the referrers API and on docker-registry 2.8.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use common::{cosign_verify, oras, push_fixture, refcat, refcat_publish, run_ok, Kind, Registry};
use refcat::artifact::annotations::{FORMAT, GRYPE_DB_BUILT, PLATFORM, SCANNER, SCANNER_VERSION};
use refcat::catalog::platforms::{platform_manifests, PlatformManifest};
use refcat::reference::{Reference, Target};
use refcat::registry::Client;
use serde_json::Value;

const FIXTURES: [(&str, &str); 3] = [
    ("debian", "fixtures/debian:12"),
    ("alpine", "fixtures/alpine:3.19"),
    ("lang", "fixtures/app:1.0.0"),
];

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The referrers `oras discover` lists on `reference`, by refcat format name.
fn listed(reference: &str) -> BTreeMap<String, Vec<Value>> {
    let out = oras(&["discover", "--format", "json", "--depth", "1", reference]);
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut by_format: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in tree["referrers"].as_array().unwrap() {
        if let Some(format) = r["annotations"][FORMAT].as_str() {
            by_format
                .entry(format.to_string())
                .or_default()
                .push(r.clone());
        }
    }
    by_format
}

async fn subjects(client: &Client, reference: &str) -> Vec<PlatformManifest> {
    let reference: Reference = reference.parse().unwrap();
    platform_manifests(client, &reference, None).await.unwrap()
}

/// Checks every refcat artifact on every platform manifest of `image`: exactly one of
/// each format, its artifactType and annotations, and cosign and refcat both verifying
/// its signature with the right key and refusing it with another.
async fn check_complete(registry: &Registry, keys: &Path, other: &Path, image: &str) {
    let client = registry.client();
    let reference = format!("{}/{image}", registry.host);
    for subject in subjects(&client, &reference).await {
        let at = format!(
            "{}/{}@{}",
            registry.host,
            image.split(':').next().unwrap(),
            subject.descriptor.digest
        );
        let found = listed(&at);
        for (format, artifact_type, scanner) in [
            ("syft-json", "application/vnd.syft+json", "syft"),
            ("spdx-json", "application/spdx+json", "syft"),
            ("grype-json", "application/vnd.grype+json", "grype"),
        ] {
            let list = found.get(format).map(Vec::as_slice).unwrap_or_default();
            assert_eq!(list.len(), 1, "{at}: one {format} artifact, found {list:?}");
            let artifact = &list[0];
            assert_eq!(
                artifact["artifactType"],
                registry.kind.listed_artifact_type(artifact_type),
                "{at} {format}"
            );
            let annotations = &artifact["annotations"];
            assert_eq!(annotations[SCANNER], scanner);
            assert!(annotations[SCANNER_VERSION]
                .as_str()
                .unwrap()
                .starts_with(if scanner == "syft" { "1.51" } else { "0.116" }));
            assert_eq!(annotations[PLATFORM], subject.platform.to_string());
            assert!(annotations["org.opencontainers.image.created"].is_string());
            if format == "grype-json" {
                assert_eq!(annotations[GRYPE_DB_BUILT], "2026-11-01T00:00:00Z");
            }
            let signed = format!(
                "{}/{}@{}",
                registry.host,
                image.split(':').next().unwrap(),
                artifact["digest"].as_str().unwrap()
            );
            let (ok, why) = cosign_verify(&keys.join("refcat.pub"), &signed);
            assert!(ok, "cosign verify {signed}: {why}");
            let (ok, _) = cosign_verify(&other.join("refcat.pub"), &signed);
            assert!(!ok, "cosign accepted {signed} with another key");
        }
    }
    let out = refcat()
        .args(["verify", "--output", "json", "--key"])
        .arg(keys.join("refcat.pub"))
        .arg(&reference)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "refcat verify {reference}: {}", stderr(&out));
    let out = refcat()
        .args(["verify", "--key"])
        .arg(other.join("refcat.pub"))
        .arg(&reference)
        .output()
        .unwrap();
    assert_eq!(code(&out), 7, "refcat verify with another key must fail");
}

/// `(vulnerability id, package, version)` of every match in grype's JSON.
fn match_set(grype_json: &[u8]) -> std::collections::BTreeSet<(String, String, String)> {
    refcat::scan::report::matches(grype_json)
        .unwrap()
        .into_iter()
        .map(|m| (m.id, m.package, m.version))
        .collect()
}

/// SPDX JSON without the two fields syft makes anew on every run.
fn spdx_stable(spdx: &[u8]) -> Value {
    let mut doc: Value = serde_json::from_slice(spdx).unwrap();
    doc["documentNamespace"] = Value::Null;
    doc["creationInfo"]["created"] = Value::Null;
    doc
}

/// What `oras pull` gets from each artifact is what syft and grype print for the same
/// platform manifest: Syft JSON byte for byte (syft's is deterministic), SPDX but for
/// its namespace and creation time, and the same matches as `grype registry:` directly.
async fn check_scanner_bytes(registry: &Registry, image: &str) {
    let client = registry.client();
    let repository = image.split(':').next().unwrap();
    for subject in subjects(&client, &format!("{}/{image}", registry.host)).await {
        let at = format!(
            "{}/{repository}@{}",
            registry.host, subject.descriptor.digest
        );
        let found = listed(&at);
        let pulled = tempfile::tempdir().unwrap();
        for format in ["syft-json", "spdx-json", "grype-json"] {
            let digest = found[format][0]["digest"].as_str().unwrap();
            oras(&[
                "pull",
                "-o",
                pulled.path().to_str().unwrap(),
                &format!("{}/{repository}@{digest}", registry.host),
            ]);
        }
        let fresh = tempfile::tempdir().unwrap();
        let platform = subject.platform.to_string();
        run_ok(common::scanner("syft").current_dir(fresh.path()).args([
            "scan",
            &format!("registry:{at}"),
            "--platform",
            &platform,
            "-q",
            "-o",
            "syft-json=sbom.syft.json",
            "-o",
            "spdx-json=sbom.spdx.json",
        ]));
        let read = |dir: &Path, name: &str| std::fs::read(dir.join(name)).unwrap();
        assert!(
            read(pulled.path(), "sbom.syft.json") == read(fresh.path(), "sbom.syft.json"),
            "{at}: the stored Syft JSON is not what syft prints"
        );
        assert_eq!(
            spdx_stable(&read(pulled.path(), "sbom.spdx.json")),
            spdx_stable(&read(fresh.path(), "sbom.spdx.json")),
            "{at}: SPDX"
        );
        let direct = run_ok(common::scanner("grype").args([
            &format!("registry:{at}"),
            "--platform",
            &platform,
            "-o",
            "json",
        ]));
        assert_eq!(
            match_set(&read(pulled.path(), "vulnerabilities.grype.json")),
            match_set(&direct.stdout),
            "{at}: stored Grype matches versus a direct grype run"
        );
    }
}

async fn publish_every_fixture(kind: Kind, signature_format: &str) {
    let registry = Registry::start(kind);
    let client = registry.client();
    let keys = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    common::write_keys(keys.path());
    common::write_keys(other.path());
    let mut refs = Vec::new();
    for (fixture, image) in FIXTURES {
        push_fixture(&client, fixture).await;
        refs.push(format!("{}/{image}", registry.host));
    }
    let out = refcat_publish(keys.path())
        .args(["--signature-format", signature_format])
        .args(&refs)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "publish: {}", stderr(&out));
    for (_, image) in FIXTURES {
        check_complete(&registry, keys.path(), other.path(), image).await;
    }

    if signature_format == "bundle" {
        for (_, image) in FIXTURES {
            check_scanner_bytes(&registry, image).await;
        }
    }

    // The stored Grype results are grype's own output: the expected matches for Debian.
    let debian = format!("{}/fixtures/debian:12", registry.host);
    let subject = &subjects(&client, &debian).await[0];
    let grype = &listed(&format!(
        "{}/fixtures/debian@{}",
        registry.host, subject.descriptor.digest
    ))["grype-json"][0];
    let pulled = tempfile::tempdir().unwrap();
    oras(&[
        "pull",
        "-o",
        pulled.path().to_str().unwrap(),
        &format!(
            "{}/fixtures/debian@{}",
            registry.host,
            grype["digest"].as_str().unwrap()
        ),
    ]);
    let results: Value = serde_json::from_slice(
        &std::fs::read(pulled.path().join("vulnerabilities.grype.json")).unwrap(),
    )
    .unwrap();
    let mut ids: Vec<&str> = results["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["vulnerability"]["id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids,
        [
            "CVE-2005-2541",
            "CVE-2023-38545",
            "CVE-2023-4911",
            "CVE-2023-5363"
        ]
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(pulled.path().join("refcat-record.json")).unwrap())
            .unwrap();
    assert_eq!(record["$type"], "dev.refcat.vulnerabilityRecord");
    assert_eq!(
        grype["annotations"]["dev.refcat.vulnerabilities.high"],
        record["summary"]["high"].to_string()
    );
    assert_eq!(
        record["vulnerabilities"].as_array().unwrap().len(),
        results["matches"].as_array().unwrap().len()
    );

    // A second run finds everything in place.
    let out = refcat_publish(keys.path())
        .args(["--signature-format", signature_format])
        .args(&refs)
        .output()
        .unwrap();
    assert_eq!(code(&out), 10, "nothing to do: {}", stderr(&out));
}

/// One test per registry kind and signature format.
macro_rules! every_fixture {
    ($($name:ident: $kind:expr, $format:literal;)*) => {$(
        #[test]
        fn $name() {
            tokio_run(publish_every_fixture($kind, $format));
        }
    )*};
}

every_fixture! {
    every_fixture_gets_a_signed_set_with_the_referrers_api_bundle: Kind::ReferrersApi, "bundle";
    every_fixture_gets_a_signed_set_with_the_referrers_api_legacy: Kind::ReferrersApi, "legacy";
    every_fixture_gets_a_signed_set_on_distribution_bundle: Kind::Distribution, "bundle";
    every_fixture_gets_a_signed_set_on_distribution_legacy: Kind::Distribution, "legacy";
}

fn tokio_run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Runs a command off the async runtime (a fault proxy on it must keep serving).
async fn output(mut cmd: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Every listed refcat artifact of `image` has all its blobs, one of each format is
/// listed per platform manifest, and all verify.
async fn check_recovered(registry: &Registry, keys: &Path, image: &str) {
    let client = registry.client();
    let reference = format!("{}/{image}", registry.host);
    let repository: Reference = reference.parse().unwrap();
    for subject in subjects(&client, &reference).await {
        let referrers = client
            .referrers(&repository.repository, &subject.descriptor.digest, None)
            .await
            .unwrap();
        let existing = refcat::publish::Existing::from_referrers(&referrers);
        for list in [&existing.syft, &existing.spdx, &existing.grype] {
            assert_eq!(
                list.len(),
                1,
                "{image}: exactly one of each format: {referrers:?}"
            );
            let m = common::image_manifest(
                &client,
                &repository.repository,
                Target::Digest(list[0].digest.clone()),
            )
            .await;
            for blob in std::iter::once(&m.config).chain(&m.layers) {
                assert!(
                    client
                        .blob_exists(&repository.repository, &blob.digest)
                        .await
                        .unwrap(),
                    "{image}: artifact {} lacks blob {}",
                    list[0].digest,
                    blob.digest
                );
            }
        }
    }
    let mut verify = refcat();
    verify
        .args(["verify", "--key"])
        .arg(keys.join("refcat.pub"))
        .arg(&reference);
    let out = output(verify).await;
    assert_eq!(
        code(&out),
        0,
        "{image}: refcat verify: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_publish_killed_after_any_step_is_finished_by_the_next_run() {
    tokio_run(async {
        let registry = Registry::distribution(None);
        let client = registry.client();
        let keys = tempfile::tempdir().unwrap();
        common::write_keys(keys.path());
        let image = refcat::fixture::build(&common::testdata().join("images/debian")).unwrap();
        for step in ["syft", "attach", "sign", "commit", "grype"] {
            let mut copy = image.clone();
            copy.repository = format!("crash/{step}").parse().unwrap();
            refcat::fixture::push(&client, &copy).await.unwrap();
            let target = format!("{}/crash/{step}:12", registry.host);
            let mut crash = refcat_publish(keys.path());
            crash.env("REFCAT_ABORT_AFTER", step).arg(&target);
            let out = output(crash).await;
            assert!(
                out.status.code().is_none() || code(&out) == 134,
                "the run should die after {step}: {}",
                stderr(&out)
            );
            let mut again = refcat_publish(keys.path());
            again.arg(&target);
            let out = output(again).await;
            assert_eq!(code(&out), 0, "after a crash at {step}: {}", stderr(&out));
            check_recovered(&registry, keys.path(), &format!("crash/{step}:12")).await;
        }
    });
}

#[test]
fn failures_are_reported_and_lose_nothing() {
    tokio_run(async {
        let registry = Registry::distribution(None);
        let client = registry.client();
        let keys = tempfile::tempdir().unwrap();
        common::write_keys(keys.path());
        let image = refcat::fixture::build(&common::testdata().join("images/debian")).unwrap();

        // An unknown tag.
        refcat::fixture::push(&client, &image).await.unwrap();
        let mut cmd = refcat_publish(keys.path());
        cmd.arg(format!("{}/fixtures/debian:13", registry.host));
        let out = output(cmd).await;
        assert_eq!(code(&out), 3, "{}", stderr(&out));
        assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

        // syft fails on an image whose layer blob is gone: nothing is attached.
        let mut broken = image.clone();
        broken.repository = "broken/debian".parse().unwrap();
        refcat::fixture::push(&client, &broken).await.unwrap();
        let layer = image
            .blobs
            .iter()
            .find(|b| b.media_type == refcat::artifact::media_types::OCI_LAYER_GZIP)
            .unwrap();
        std::fs::remove_file(registry.blob_path(&layer.digest)).unwrap();
        let mut cmd = refcat_publish(keys.path());
        cmd.arg(format!("{}/broken/debian:12", registry.host));
        let out = output(cmd).await;
        assert_eq!(code(&out), 6, "{}", stderr(&out));
        assert!(stderr(&out).contains("syft failed"), "{}", stderr(&out));
        let broken_ref = format!("{}/broken/debian@{}", registry.host, image.top.digest);
        assert!(
            listed(&broken_ref).is_empty(),
            "nothing attached after a syft failure"
        );

        // grype fails (its own --fail-on, set through its environment): the SBOMs are
        // attached and signed, and the next run adds Grype alone, reading the stored
        // gzip-compressed Syft JSON.
        let mut flaky = image.clone();
        flaky.repository = "flaky/debian".parse().unwrap();
        refcat::fixture::push(&client, &flaky).await.unwrap();
        let target = format!("{}/flaky/debian:12", registry.host);
        let mut cmd = refcat_publish(keys.path());
        cmd.env("GRYPE_FAIL_ON_SEVERITY", "negligible")
            .arg("--compress")
            .arg(&target);
        let out = output(cmd).await;
        assert_eq!(code(&out), 6, "{}", stderr(&out));
        assert!(stderr(&out).contains("grype failed"), "{}", stderr(&out));
        let at = format!("{}/flaky/debian@{}", registry.host, image.top.digest);
        let before = listed(&at);
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            ["spdx-json", "syft-json"]
        );
        let mut cmd = refcat_publish(keys.path());
        cmd.arg(&target);
        let out = output(cmd).await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let after = listed(&at);
        assert_eq!(
            after["syft-json"], before["syft-json"],
            "the SBOMs are kept"
        );
        assert_eq!(after["spdx-json"], before["spdx-json"]);
        check_recovered(&registry, keys.path(), "flaky/debian:12").await;

        // The registry fails every manifest push: a clear error, then a clean retry.
        let proxy = common::faults::FaultProxy::start(&registry.host).await;
        proxy.inject(common::faults::Rule::new(
            axum::http::Method::PUT,
            "/manifests/",
            1000,
            common::faults::Fault::Status(503, None),
        ));
        let mut cmd = refcat_publish(keys.path());
        cmd.args(["--retries", "2"])
            .arg(format!("{}/fixtures/debian:12", proxy.host));
        let out = output(cmd).await;
        assert_eq!(code(&out), 5, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("HTTP 503 after 2 attempts"),
            "{}",
            stderr(&out)
        );
        proxy.clear();
        let mut cmd = refcat_publish(keys.path());
        cmd.arg(format!("{}/fixtures/debian:12", proxy.host));
        let out = output(cmd).await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        check_recovered(&registry, keys.path(), "fixtures/debian:12").await;
    });
}

#[test]
fn tampering_is_caught_by_cosign_and_refcat() {
    tokio_run(async {
        let registry = Registry::distribution(None);
        let client = registry.client();
        let keys = tempfile::tempdir().unwrap();
        common::write_keys(keys.path());
        push_fixture(&client, "debian").await;
        let target = format!("{}/fixtures/debian:12", registry.host);
        let mut cmd = refcat_publish(keys.path());
        cmd.arg(&target);
        assert_eq!(code(&output(cmd).await), 0);
        let repository: refcat::reference::RepositoryName = "fixtures/debian".parse().unwrap();
        let subject = &subjects(&client, &target).await[0];
        let at = format!(
            "{}/fixtures/debian@{}",
            registry.host, subject.descriptor.digest
        );
        let found = listed(&at);

        // A blob tampered with on the registry's disk: the Grype artifact's bundle.
        let grype_digest = found["grype-json"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let grype_ref = format!("{}/fixtures/debian@{grype_digest}", registry.host);
        let (ok, _) = cosign_verify(&keys.path().join("refcat.pub"), &grype_ref);
        assert!(ok, "verifies before tampering");
        let signature = client
            .referrers(&repository, &grype_digest.parse().unwrap(), None)
            .await
            .unwrap();
        let m = common::image_manifest(
            &client,
            &repository,
            Target::Digest(signature[0].digest.clone()),
        )
        .await;
        let path = registry.blob_path(&m.layers[0].digest);
        let tampered =
            std::fs::read_to_string(&path)
                .unwrap()
                .replacen("\"sig\":\"M", "\"sig\":\"N", 1);
        std::fs::write(&path, tampered).unwrap();
        let (ok, _) = cosign_verify(&keys.path().join("refcat.pub"), &grype_ref);
        assert!(!ok, "cosign accepted a tampered bundle");

        // A manifest tampered with: the Syft artifact with a changed annotation, listed
        // in its place. Its digest is new, and nothing signed it.
        let syft_digest = found["syft-json"][0]["digest"].as_str().unwrap();
        let original = client
            .get_manifest(&repository, &Target::Digest(syft_digest.parse().unwrap()))
            .await
            .unwrap();
        let forged = String::from_utf8(original.bytes.to_vec())
            .unwrap()
            .replace("\"dev.refcat.packages\":\"", "\"dev.refcat.packages\":\"1");
        let pushed = client
            .put_manifest(
                &repository,
                &Target::Digest(refcat::digest::sha256(forged.as_bytes())),
                refcat::artifact::media_types::OCI_MANIFEST,
                forged.clone().into(),
            )
            .await
            .unwrap();
        let mut descriptor = original.descriptor();
        descriptor.digest = pushed.digest.clone();
        descriptor.size = forged.len() as u64;
        descriptor.artifact_type = Some("application/vnd.syft+json".into());
        client
            .add_to_tag_schema(
                &repository,
                &subject.descriptor.digest,
                vec![descriptor],
                refcat::registry::SubjectState::Existing,
            )
            .await
            .unwrap();
        let (ok, _) = cosign_verify(
            &keys.path().join("refcat.pub"),
            &format!("{}/fixtures/debian@{}", registry.host, pushed.digest),
        );
        assert!(!ok, "cosign accepted a forged manifest");

        let mut verify = refcat();
        verify
            .args(["verify", "--output", "json", "--key"])
            .arg(keys.path().join("refcat.pub"))
            .arg(&target);
        let out = output(verify).await;
        assert_eq!(code(&out), 7, "{}", stderr(&out));
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        let verdict = |digest: &str| {
            rows.as_array()
                .unwrap()
                .iter()
                .find(|r| r["artifact"] == digest)
                .map(|r| r["verdict"].as_str().unwrap().to_string())
                .unwrap()
        };
        assert_eq!(verdict(&grype_digest), "invalid");
        assert_eq!(verdict(pushed.digest.as_ref()), "unsigned");
        assert_eq!(verdict(syft_digest), "verified");
    });
}

async fn second_run_only_checks(kind: Kind) {
    let registry = Registry::start(kind);
    let keys = tempfile::tempdir().unwrap();
    let key = common::write_keys(keys.path());
    let mut refs = Vec::new();
    for (fixture, image) in FIXTURES {
        push_fixture(&registry.client(), fixture).await;
        refs.push(format!("{}/{image}", registry.host));
    }
    let mut first = refcat_publish(keys.path());
    first.args(&refs);
    assert_eq!(code(&output(first).await), 0);

    let client = registry.client();
    let (syft, grype) = (
        refcat::scan::Syft {
            program: common::tool("syft"),
            timeout: std::time::Duration::from_secs(300),
        },
        refcat::scan::Grype {
            program: common::tool("grype"),
            timeout: std::time::Duration::from_secs(300),
            db_cache_dir: Some(common::tools_root().join("grype-db")),
        },
    );
    let publisher = refcat::publish::Publisher::new(
        client.clone(),
        syft,
        grype,
        key,
        refcat::publish::PublishOptions::default(),
    );
    let mut platform_manifests = 0;
    for reference in &refs {
        let reports = publisher
            .publish(&reference.parse().unwrap())
            .await
            .unwrap();
        assert!(reports
            .iter()
            .all(|r| r.published.is_empty() && !r.missing.any()));
        platform_manifests += reports.len() as u64;
    }
    let counts = client.counter().snapshot();
    let writes: u64 = counts
        .iter()
        .filter(|((method, _), _)| method != "GET" && method != "HEAD")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(writes, 0, "a second run writes nothing: {counts:?}");
    // CheckExisting alone: per image, its manifest (and a single-platform image's
    // config, for the platform); per platform manifest, one referrers listing. Without
    // the referrers API that listing is the tag-schema index, after one probe per
    // repository that learns the API is missing.
    let images = refs.len() as u64;
    let single_platform = 2;
    let total: u64 = counts.values().sum();
    let expected = match kind {
        Kind::ReferrersApi => images + single_platform + platform_manifests,
        Kind::Distribution => images + single_platform + platform_manifests + images,
    };
    assert_eq!(total, expected, "{counts:?}");
}

#[test]
fn a_second_publish_writes_nothing_and_only_checks_with_the_referrers_api() {
    tokio_run(second_run_only_checks(Kind::ReferrersApi));
}

#[test]
fn a_second_publish_writes_nothing_and_only_checks_on_distribution() {
    tokio_run(second_run_only_checks(Kind::Distribution));
}

#[test]
fn dry_run_platform_filter_and_all_tags_select_the_subjects() {
    tokio_run(async {
        let registry = Registry::start(Kind::ReferrersApi);
        let keys = tempfile::tempdir().unwrap();
        common::write_keys(keys.path());
        push_fixture(&registry.client(), "alpine").await;
        let plan = |args: Vec<String>| {
            let mut cmd = refcat_publish(keys.path());
            cmd.arg("--dry-run").args(args);
            cmd
        };
        let alpine = format!("{}/fixtures/alpine:3.19", registry.host);
        let out = output(plan(vec![
            "--platform".into(),
            "linux/arm64".into(),
            alpine.clone(),
        ]))
        .await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let entries: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(entries.as_array().unwrap().len(), 1);
        assert_eq!(entries[0]["platform"], "linux/arm64/v8");
        assert_eq!(entries[0]["missing"]["grype"], true);

        let out = output(plan(vec![
            "--all-tags".into(),
            format!("{}/fixtures/alpine", registry.host),
        ]))
        .await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let entries: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            entries.as_array().unwrap().len(),
            4,
            "two tags, two platforms each"
        );

        let out = output(plan(vec![
            "--platform".into(),
            "linux/s390x".into(),
            alpine,
        ]))
        .await;
        assert_eq!(code(&out), 3, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("no platform manifest for linux/s390x"),
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("linux/amd64, linux/arm64/v8"),
            "{}",
            stderr(&out)
        );
        // Nothing was written.
        assert!(listed(&format!("{}/fixtures/alpine:3.19", registry.host)).is_empty());

        // A BuildKit attestation manifest (unknown/unknown) in an index is not an image.
        let client = registry.client();
        let repository: refcat::reference::RepositoryName = "fixtures/alpine".parse().unwrap();
        let attestation = refcat::artifact::ArtifactBuilder::new("application/vnd.in-toto+json")
            .layer(refcat::artifact::ArtifactLayer {
                media_type: "application/vnd.in-toto+json".into(),
                data: br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#.to_vec().into(),
                title: "provenance.json".into(),
            })
            .build();
        client
            .push_artifact(&repository, &attestation)
            .await
            .unwrap();
        let fetched = client
            .get_manifest(&repository, &Target::Tag("3.19".parse().unwrap()))
            .await
            .unwrap();
        let mut index: Value = serde_json::from_slice(&fetched.bytes).unwrap();
        let attests = index["manifests"][0]["digest"].clone();
        index["manifests"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": attestation.digest.to_string(),
                "size": attestation.manifest.len(),
                "platform": { "os": "unknown", "architecture": "unknown" },
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": attests,
                },
            }));
        client
            .put_manifest(
                &repository,
                &Target::Tag("attested".parse().unwrap()),
                &fetched.media_type,
                serde_json::to_vec(&index).unwrap().into(),
            )
            .await
            .unwrap();
        let out = output(plan(vec![format!(
            "{}/fixtures/alpine:attested",
            registry.host
        )]))
        .await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let entries: Value = serde_json::from_slice(&out.stdout).unwrap();
        let platforms: Vec<&str> = entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["platform"].as_str().unwrap())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
    });
}

#[test]
fn first_seen_carries_over_when_grype_runs_again() {
    tokio_run(async {
        let registry = Registry::start(Kind::ReferrersApi);
        let keys = tempfile::tempdir().unwrap();
        common::write_keys(keys.path());
        push_fixture(&registry.client(), "lang").await;
        let target = format!("{}/fixtures/app:1.0.0", registry.host);
        let records = || async {
            let client = registry.client();
            let subject = &subjects(&client, &target).await[0];
            let repository: refcat::reference::RepositoryName = "fixtures/app".parse().unwrap();
            let referrers = client
                .referrers(&repository, &subject.descriptor.digest, None)
                .await
                .unwrap();
            let mut out = Vec::new();
            for grype in refcat::publish::Existing::from_referrers(&referrers).grype {
                let m = common::image_manifest(&client, &repository, Target::Digest(grype.digest))
                    .await;
                let data = client
                    .get_blob(&repository, &m.layers[1].digest, None)
                    .await
                    .unwrap();
                out.push(serde_json::from_slice::<Value>(&data).unwrap());
            }
            out
        };
        let mut first = refcat_publish(keys.path());
        first.arg(&target);
        assert_eq!(code(&output(first).await), 0);
        let before = records().await;
        // Created times have second precision: make the second run's visibly later.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let mut again = refcat_publish(keys.path());
        again.arg("--force").arg(&target);
        assert_eq!(code(&output(again).await), 0);
        let after = records().await;
        assert_eq!(
            (before.len(), after.len()),
            (1, 2),
            "a second Grype artifact, newest first"
        );
        let (old, new) = (&before[0], &after[0]);
        assert_ne!(new["created"], old["created"]);
        assert_eq!(new["vulnerabilities"].as_array().unwrap().len(), 3);
        for (n, o) in new["vulnerabilities"]
            .as_array()
            .unwrap()
            .iter()
            .zip(old["vulnerabilities"].as_array().unwrap())
        {
            assert_eq!(n["id"], o["id"]);
            assert_eq!(n["firstSeen"], o["firstSeen"], "first_seen is kept");
            assert_eq!(n["firstSeen"], old["created"]);
        }
    });
}
