//! `refcat publish` options and re-runs: dry-run plans, the platform filter, --all-tags,
//! attestation manifests skipped, and first_seen kept across re-scans.

use crate::common;

use crate::common::published::{code, listed, output, stderr, subjects, tokio_run};
use crate::common::{push_fixture, refcat_publish, Kind, Registry};
use refcat::reference::Target;
use serde_json::Value;

#[test]
fn dry_run_platform_filter_and_all_tags_select_the_subjects() {
    tokio_run(async {
        let registry = Registry::start(Kind::Zot);
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
        common::published::push_attested_index(
            &client,
            &repository,
            "3.19",
            "attested",
            &serde_json::json!({ "_type": "https://in-toto.io/Statement/v0.1" }),
        )
        .await;
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
        let registry = Registry::start(Kind::Zot);
        let keys = tempfile::tempdir().unwrap();
        common::write_keys(keys.path());
        push_fixture(&registry.client(), "lang").await;
        let target = format!("{}/fixtures/app:1.0.0", registry.host);
        let records = || async {
            let client = registry.client();
            let subject = &subjects(&client, &target).await[0];
            let repository: refcat::reference::RepositoryName = "fixtures/app".parse().unwrap();
            let existing =
                common::published::candidates(&client, &repository, &subject.descriptor.digest)
                    .await;
            let mut out = Vec::new();
            for grype in existing.of(refcat::artifact::Format::GrypeJson) {
                let m = grype.manifest();
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

        // --keep 1: the third run's Grype artifact is the only one left; the two before
        // it are deleted with their Sigstore bundles.
        let client = registry.client();
        let repository: refcat::reference::RepositoryName = "fixtures/app".parse().unwrap();
        let subject = subjects(&client, &target).await[0]
            .descriptor
            .digest
            .clone();
        let grype_of = |referrers: Vec<refcat::oci::Descriptor>| -> Vec<_> {
            let grype = Some(refcat::artifact::Format::GrypeJson);
            referrers
                .into_iter()
                .filter(|d| refcat::artifact::Format::of(d) == grype)
                .collect()
        };
        let older = grype_of(client.referrers(&repository, &subject, None).await.unwrap());
        let mut bundles = Vec::new();
        for artifact in &older {
            let signatures = client
                .referrers(&repository, &artifact.digest, None)
                .await
                .unwrap();
            assert_eq!(signatures.len(), 1, "one bundle per artifact");
            bundles.extend(signatures.into_iter().map(|d| d.digest));
        }
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let mut keep = refcat_publish(keys.path());
        keep.args(["--force", "--keep", "1", &target]);
        let out = output(keep).await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout)
                .matches("deleted older grype-json")
                .count(),
            2
        );
        let left = grype_of(client.referrers(&repository, &subject, None).await.unwrap());
        assert_eq!(left.len(), 1);
        assert!(older.iter().all(|o| o.digest != left[0].digest));
        for gone in older.iter().map(|o| &o.digest).chain(&bundles) {
            let target = Target::Digest(gone.clone());
            let head = client.head_manifest(&repository, &target).await.unwrap();
            assert!(head.is_none(), "{gone} is deleted");
        }
        assert_eq!(
            records().await[0]["vulnerabilities"],
            after[0]["vulnerabilities"]
        );
        let out = output({
            let mut verify = common::refcat();
            verify
                .args(["verify", "--key"])
                .arg(keys.path().join("refcat.pub"))
                .arg(&target);
            verify
        })
        .await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    });
}
