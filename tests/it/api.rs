//! `refcat serve`'s views against real registries holding the published fixtures: the
//! values come from the fixtures' own files and from what publish attached.

use crate::common;

use std::collections::BTreeSet;

use crate::common::served::serve;
use crate::common::Kind;

/// The package names in the Debian fixture's dpkg status file.
fn dpkg_packages() -> BTreeSet<String> {
    std::fs::read_to_string(common::testdata().join("images/debian/rootfs/var/lib/dpkg/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("Package: "))
        .map(str::to_string)
        .collect()
}

async fn views_show_the_fixtures(kind: Kind) {
    let served = serve(kind).await;
    // A README attached the way users attach one.
    let readme = tempfile::tempdir().unwrap();
    std::fs::write(readme.path().join("README.md"), "# debian\n\nA fixture.\n").unwrap();
    let debian_12 = format!("{}/fixtures/debian:12", served.registry.host);
    let mut attach = std::process::Command::new(common::tool("oras"));
    attach.current_dir(readme.path()).args([
        "attach",
        "--plain-http",
        "--artifact-type",
        "text/markdown",
        &debian_12,
        "README.md:text/markdown",
    ]);
    common::run_ok(&mut attach);

    // Tags of the multi-arch image: both tags, both platforms with their created time,
    // counts from the Grype artifacts' annotations.
    let tags = served.ok("/v1/images/fixtures/alpine/tags").await;
    let entries = tags["tags"].as_array().unwrap();
    let names: Vec<&str> = entries.iter().map(|t| t["tag"].as_str().unwrap()).collect();
    assert_eq!(names, ["3.19", "3.19.1"]);
    assert_eq!(entries[0]["floating"], true, "3.19 is extended by 3.19.1");
    assert_eq!(entries[1]["floating"], false);
    for entry in entries {
        let platforms: Vec<&str> = entry["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["platform"].as_str().unwrap())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
        for p in entry["platforms"].as_array().unwrap() {
            assert_eq!(p["created"], "2024-01-26T00:00:00Z");
            assert_eq!(p["sbom"], true);
            assert!(p["scannedAt"].is_string());
        }
        assert_eq!(entry["oldestCreated"], "2024-01-26T00:00:00Z");
    }
    // The counts equal the vulnerabilities view's totals, summed over platforms.
    let vulns = served
        .ok("/v1/images/fixtures/alpine/vulnerabilities/3.19")
        .await;
    for severity in ["critical", "high", "medium", "low", "negligible", "unknown"] {
        let sum: u64 = vulns["platforms"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p["totals"][severity].as_u64().unwrap())
            .sum();
        assert_eq!(entries[0]["vulnerabilities"][severity], sum, "{severity}");
    }
    let alpine_ids: BTreeSet<(String, String)> = vulns["platforms"]["linux/arm64/v8"]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_string(),
                m["package"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        alpine_ids,
        [
            ("CVE-2024-2511", "libcrypto3"),
            ("CVE-2024-2511", "libssl3")
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    );

    // Details: the Debian image's config.
    let details = served.ok("/v1/images/fixtures/debian/details/12").await;
    let amd64 = &details["platforms"]["linux/amd64"];
    assert_eq!(amd64["user"], "root");
    assert_eq!(amd64["cmd"], serde_json::json!(["bash"]));
    assert_eq!(amd64["created"], "2023-07-22T00:00:00Z");
    assert_eq!(amd64["labels"]["org.opencontainers.image.title"], "debian");
    assert_eq!(amd64["layerCount"], 1);

    // SBOM: exactly the packages of the fixture's dpkg status, filterable and paged.
    let sbom = served
        .ok("/v1/images/fixtures/debian/sbom/12?per_page=1000")
        .await;
    let listed: BTreeSet<String> = sbom["platforms"]["linux/amd64"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, dpkg_packages());
    let page = served
        .ok("/v1/images/fixtures/debian/sbom/12?name=lib&per_page=5&page=2")
        .await;
    let page = &page["platforms"]["linux/amd64"];
    assert_eq!(page["packages"].as_array().unwrap().len(), 5);
    assert_eq!(
        page["total"].as_u64().unwrap() as usize,
        dpkg_packages().iter().filter(|p| p.contains("lib")).count()
    );
    let python = served
        .ok("/v1/images/fixtures/app/sbom/1.0.0?type=python")
        .await;
    let names: Vec<&str> = python["platforms"]["linux/amd64"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["requests"]);

    // Vulnerabilities: the Debian matches, a severity filter, first_seen.
    let vulns = served
        .ok("/v1/images/fixtures/debian/vulnerabilities/12?severity=negligible")
        .await;
    let amd64 = &vulns["platforms"]["linux/amd64"];
    assert_eq!(amd64["totals"]["high"], 6);
    assert_eq!(amd64["totals"]["negligible"], 1);
    let matches = amd64["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0]["id"], "CVE-2005-2541");
    assert_eq!(matches[0]["package"], "tar");
    assert!(matches[0]["firstSeen"].is_string());
    assert_eq!(amd64["dbBuilt"], "2026-11-01T00:00:00Z");

    // Digest-addressed views equal the tag-addressed ones.
    let digest = details["platforms"]["linux/amd64"]["digest"]
        .as_str()
        .unwrap();
    let by_digest = served
        .ok(&format!(
            "/v1/images/fixtures/debian/releases/{digest}/details"
        ))
        .await;
    assert_eq!(by_digest["platforms"], details["platforms"]);

    // History: the stream 3.19 is one release carrying both tags.
    let history = served.ok("/v1/images/fixtures/alpine/history/3.19").await;
    let releases = history["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["tags"], serde_json::json!(["3.19", "3.19.1"]));
    assert_eq!(releases[0]["current"], true);
    assert_eq!(releases[0]["created"], "2024-01-26T00:00:00Z");
    assert_eq!(releases[0]["digest"], entries[0]["digest"]);
    assert_eq!(
        releases[0]["vulnerabilities"],
        entries[0]["vulnerabilities"]
    );

    // The directory, an overview, and the catalog-wide aggregate.
    let directory = served.ok("/v1/images").await;
    assert_eq!(directory["total"], 3);
    let images = directory["images"].as_array().unwrap();
    let by_name = |name: &str| images.iter().find(|i| i["name"] == name).unwrap().clone();
    let alpine = by_name("fixtures/alpine");
    assert_eq!(
        alpine["defaultTag"], "3.19",
        "the floating tag of the newest release"
    );
    assert_eq!(
        alpine["architectures"],
        serde_json::json!(["amd64", "arm64"])
    );
    assert_eq!(
        alpine["tagCount"], 2,
        "referrers and signature tags are not counted"
    );
    let debian = by_name("fixtures/debian");
    assert_eq!(debian["title"], "debian");
    assert_eq!(debian["licenses"], "GPL-2.0-or-later");
    assert_eq!(
        debian["source"],
        "https://salsa.debian.org/debian/base-files"
    );
    assert_eq!(debian["vulnerabilities"]["high"], 6);
    assert_eq!(debian["oldestCreated"], "2023-07-22T00:00:00Z");
    let overview = served.ok("/v1/images/fixtures/debian").await;
    assert_eq!(overview["title"], "debian");
    assert_eq!(overview["readme"], "# debian\n\nA fixture.\n");
    assert_eq!(overview["defaultTag"], debian["defaultTag"]);
    let page = served.ok("/v1/images?per_page=2&page=2").await;
    assert_eq!(page["images"].as_array().unwrap().len(), 1);

    let aggregate = served.ok("/v1/vulnerabilities").await;
    assert_eq!(
        aggregate["source"], "live",
        "no stored aggregate is configured"
    );
    let entries = aggregate["vulnerabilities"].as_array().unwrap();
    let ids: BTreeSet<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "CVE-2005-2541",
            "CVE-2023-38545",
            "CVE-2023-4911",
            "CVE-2023-5363",
            "CVE-2024-2511",
            "GHSA-35jh-r3h4-6jhm",
            "GHSA-j8r2-6x86-q33q",
            "GHSA-xvch-5gv4-984h",
        ]
        .into_iter()
        .collect()
    );
    let total: u64 = aggregate["totals"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, entries.len());
    let openssl = entries.iter().find(|e| e["id"] == "CVE-2024-2511").unwrap();
    assert_eq!(
        openssl["affected"],
        serde_json::json!({ "fixtures/alpine": ["3.19"] })
    );

    // Errors are problem+json: 404 unknown, 400 bad input, never a 500.
    for (path, status) in [
        ("/v1/images/fixtures/nope/tags", 404),
        ("/v1/images/fixtures/debian/details/13", 404),
        ("/v1/images/fixtures/debian/releases/sha256:0000000000000000000000000000000000000000000000000000000000000000/sbom", 404),
        ("/v1/images/Fixtures/debian/tags", 400),
        ("/v1/images/fixtures//debian/tags", 400),
        ("/v1/images/fixtures/debian/sbom/bad:tag", 400),
        ("/v1/images/fixtures/debian/sbom/12?page=x", 400),
        ("/v1/images/fixtures/debian/vulnerabilities/12?severity=bad", 400),
        ("/v1/images/fixtures/debian/releases/sha256:short/sbom", 400),
        ("/v1/images/fixtures/debian/nothing/12", 404),
        ("/v1/images/fixtures/debian/history/13", 404),
        ("/v1/images/fixtures/debian/releases/sha256:0000000000000000000000000000000000000000000000000000000000000000/history", 404),
        ("/v1/nothing", 404),
    ] {
        let (got, content_type, body) = served.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(content_type, "application/problem+json", "{path}");
        assert_eq!(body["status"], status, "{path}");
        assert!(body["detail"].is_string(), "{path}");
    }
    assert_eq!(served.get("/healthz").await.0, 200);
    let metrics = reqwest::get(format!("{}/metrics", served.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from:\n{metrics}"))
    };
    assert!(value("refcat_http_requests_total{view=\"tags\",status=\"200\"}") >= 1);
    assert!(value("refcat_http_requests_total{view=\"tags\",status=\"404\"}") >= 1);
    assert!(value("refcat_registry_requests_total{method=\"GET\",kind=\"manifest\"}") > 0);
    assert_eq!(served.get("/readyz").await.0, 200);
    drop(served.registry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_show_the_fixtures_on_zot() {
    views_show_the_fixtures(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_show_the_fixtures_on_distribution() {
    views_show_the_fixtures(Kind::Distribution).await;
}
