//! `refcat publish` end to end, with the real syft, grype (fixture DB), oras and cosign,
//! on a registry with the referrers API and on docker-registry 2.8: what it attaches,
//! and that a second run only checks.

use crate::common;

use std::path::Path;
use std::process::Command;

use crate::common::published::{code, listed, output, stderr, subjects, tokio_run};
use crate::common::{
    cosign_verify, oras, push_fixture, refcat, refcat_publish, run_ok, Kind, Registry,
};
use refcat::artifact::annotations::{GRYPE_DB_BUILT, PLATFORM, SCANNER, SCANNER_VERSION};
use serde_json::Value;

const FIXTURES: [(&str, &str); 3] = [
    ("debian", "fixtures/debian:12"),
    ("alpine", "fixtures/alpine:3.19"),
    ("lang", "fixtures/app:1.0.0"),
];

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
            assert_eq!(artifact["artifactType"], artifact_type, "{at} {format}");
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

    // A second run finds everything in place: an idempotent re-run under `set -e`
    // succeeds, and only --detailed-exitcode tells it apart with 10.
    let again = refcat_publish(keys.path())
        .args(["--signature-format", signature_format])
        .args(&refs)
        .get_args()
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let script = format!(
        "set -e\n{refcat} {again}\n{refcat} {again}\necho both-runs-passed\n",
        refcat = env!("CARGO_BIN_EXE_refcat")
    );
    let mut shell = Command::new("bash");
    shell.arg("-c").arg(&script).envs(
        refcat_publish(keys.path())
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
    );
    let out = shell.output().unwrap();
    assert_eq!(code(&out), 0, "set -e re-run: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("both-runs-passed"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("): complete"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = refcat_publish(keys.path())
        .args([
            "--signature-format",
            signature_format,
            "--detailed-exitcode",
        ])
        .args(&refs)
        .output()
        .unwrap();
    assert_eq!(code(&out), 10, "nothing to do: {}", stderr(&out));
}

/// `text` quoted for bash.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
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
    every_fixture_gets_a_signed_set_on_zot_bundle: Kind::Zot, "bundle";
    every_fixture_gets_a_signed_set_on_zot_legacy: Kind::Zot, "legacy";
    every_fixture_gets_a_signed_set_on_distribution_bundle: Kind::Distribution, "bundle";
    every_fixture_gets_a_signed_set_on_distribution_legacy: Kind::Distribution, "legacy";
}

/// A publisher with the pinned scanners, writing through `client`.
fn publisher(
    client: &refcat::registry::Client,
    key: refcat::sign::KeyPair,
    options: refcat::publish::PublishOptions,
) -> refcat::publish::Publisher {
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
    refcat::publish::Publisher::new(client.clone(), syft, grype, key, options)
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
    let publisher = publisher(&client, key, refcat::publish::PublishOptions::default());
    // The first check proves each artifact: per platform manifest, one referrers listing,
    // then per artifact its manifest and its signature (the bundle's listing, manifest
    // and blob). The second check, by the same publisher, only lists: it remembers what
    // it proved. Without the referrers API a listing is the tag-schema index, after one
    // probe per repository that learns the API is missing.
    let images = refs.len() as u64;
    let single_platform = 2;
    let probes = match kind {
        Kind::Zot => 0,
        Kind::Distribution => images,
    };
    let mut seen = 0;
    for (pass, per_platform_manifest) in [("first", 1 + 3 * (1 + 3)), ("second", 1)] {
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
        assert_eq!(writes, 0, "a check writes nothing: {counts:?}");
        // Per image, its manifest (and a single-platform image's config, for the
        // platform), then CheckExisting.
        let total: u64 = counts.values().sum();
        let probed = if pass == "first" { probes } else { 0 };
        let expected =
            images + single_platform + platform_manifests * per_platform_manifest + probed;
        assert_eq!(total - seen, expected, "{pass} check: {counts:?}");
        seen = total;
    }
}

#[test]
fn a_second_publish_writes_nothing_and_only_checks_on_zot() {
    tokio_run(second_run_only_checks(Kind::Zot));
}

#[test]
fn a_second_publish_writes_nothing_and_only_checks_on_distribution() {
    tokio_run(second_run_only_checks(Kind::Distribution));
}

/// A forced run on a registry without the referrers API, in a fresh process: the write
/// check is one mount request (the repository holds the empty blob), and the subject's
/// tag-schema index is read and written once for all three new artifacts.
#[test]
fn a_forced_publish_lists_its_three_artifacts_in_one_index_update() {
    tokio_run(async {
        let registry = Registry::start(Kind::Distribution);
        let keys = tempfile::tempdir().unwrap();
        let key = common::write_keys(keys.path());
        push_fixture(&registry.client(), "debian").await;
        let reference = format!("{}/fixtures/debian:12", registry.host);
        let mut first = refcat_publish(keys.path());
        first.arg(&reference);
        assert_eq!(code(&output(first).await), 0);

        let client = registry.client();
        let options = refcat::publish::PublishOptions {
            force: true,
            ..Default::default()
        };
        let reports = publisher(&client, key, options)
            .publish(&reference.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].published.len(), 3);
        let counts = client.counter().snapshot();
        let count = |method: &str, kind| counts.get(&(method.to_string(), kind)).copied();
        use refcat::registry::RequestKind::{Manifest, Upload};
        // Uploads: the mount that checks writing, then per artifact and per signature
        // one blob (the Grype artifact has two), each POST then PUT.
        assert_eq!(count("POST", Upload), Some(1 + 4 + 3), "{counts:?}");
        assert_eq!(count("PUT", Upload), Some(4 + 3), "{counts:?}");
        // Manifests written: the three artifacts, their three bundles and the bundles'
        // tag-schema indexes, and the subject's index once.
        assert_eq!(count("PUT", Manifest), Some(3 + 3 + 3 + 1), "{counts:?}");
        // Read: the image, the subject's index before the check and before its update,
        // the old Grype artifact and its bundle's index and manifest.
        assert_eq!(count("GET", Manifest), Some(1 + 2 + 1 + 2), "{counts:?}");
    });
}
