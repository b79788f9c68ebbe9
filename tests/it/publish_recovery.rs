//! `refcat publish` when things go wrong: a run killed after any step, failures of the
//! registry and of the scanners, and tampering caught by cosign and refcat verify.

use crate::common;

use crate::common::published::{
    check_recovered, code, listed, output, stderr, subjects, tokio_run,
};
use crate::common::{cosign_verify, push_fixture, refcat, refcat_publish};
use refcat::reference::Target;
use serde_json::Value;

#[test]
fn a_publish_killed_after_any_step_is_finished_by_the_next_run() {
    tokio_run(async {
        let (registry, keys) = common::keyed_distribution();
        let client = registry.client();
        let image = crate::fixture::build(&common::testdata().join("images/debian")).unwrap();
        for step in ["syft", "attach", "sign", "commit", "grype"] {
            let mut copy = image.clone();
            copy.repository = format!("crash/{step}").parse().unwrap();
            crate::fixture::push(&client, &copy).await.unwrap();
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
        let (registry, keys) = common::keyed_distribution();
        let client = registry.client();
        let image = crate::fixture::build(&common::testdata().join("images/debian")).unwrap();

        // An unknown tag.
        crate::fixture::push(&client, &image).await.unwrap();
        let mut cmd = refcat_publish(keys.path());
        cmd.arg(format!("{}/fixtures/debian:13", registry.host));
        let out = output(cmd).await;
        assert_eq!(code(&out), 3, "{}", stderr(&out));
        assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

        // syft fails on an image whose layer blob is gone: nothing is attached.
        let mut broken = image.clone();
        broken.repository = "broken/debian".parse().unwrap();
        crate::fixture::push(&client, &broken).await.unwrap();
        let layer = image
            .blobs
            .iter()
            .find(|b| b.media_type == refcat::media_types::OCI_LAYER_GZIP)
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
        crate::fixture::push(&client, &flaky).await.unwrap();
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
        cmd.args(["--retries", "1"])
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
        let (registry, keys) = common::keyed_distribution();
        let client = registry.client();
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
                refcat::media_types::OCI_MANIFEST,
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
