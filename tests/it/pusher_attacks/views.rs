//! Attacks that aim at what refcat shows and signs: look-alike results, hostile
//! downloads, floods, made-up dates and a broken repository.

use super::*;

/// `oras attach` of a Grype-typed result that claims to be refcat's, newer than any
/// real one, with a made-up critical vulnerability, to `subject`.
fn oras_attach_forged_result(host: &str, subject: &PlatformManifest) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vulnerabilities.grype.json"),
        made_up_grype_json(),
    )
    .unwrap();
    run_ok(Command::new(tool("oras")).current_dir(dir.path()).args([
        "attach",
        "--plain-http",
        "--artifact-type",
        GRYPE_JSON,
        "--annotation",
        &format!("{CREATED}=2099-01-01T00:00:00Z"),
        "--annotation",
        &format!("{FORMAT}=grype-json"),
        "--annotation",
        &format!("{GRYPE_DB_BUILT}=2099-01-01T00:00:00Z"),
        &format!("{host}/{ALPINE}@{}", subject.descriptor.digest),
        &format!("vulnerabilities.grype.json:{GRYPE_JSON}"),
    ]));
}

fn a_look_alike_never_reaches_the_signed_aggregate(kind: Kind) {
    // The look-alikes are there before the worker publishes and aggregates.
    let (registry, keys, _, platforms) = tokio_run(pushed_alpine(kind));
    for platform in &platforms {
        oras_attach_forged_result(&registry.host, platform);
    }
    let worker = Worker::start(
        &registry,
        keys.path(),
        free_port(),
        &[
            ("REFCAT_AGGREGATE_REPOSITORY", "refcat/catalog".as_ref()),
            ("REFCAT_RECONCILE_INTERVAL", "1".as_ref()),
        ],
    );
    worker.wait_idle(Duration::from_secs(300));
    let public = keys.path().join("refcat.pub");
    let public = public.to_str().unwrap();
    let args = [
        "--key",
        public,
        "--require-signature",
        "--aggregate-repository",
        "refcat/catalog",
    ];
    let stored = tokio_run(async {
        let serve = ServeProcess::start(&registry.host, &args).await;
        let start = Instant::now();
        loop {
            let (status, view) = serve.get("/v1/vulnerabilities").await;
            if status == 200 && view["source"] == "artifact" {
                break view;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no stored aggregate: {view}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    // The stored aggregate verifies with the worker's key, and holds real results only.
    assert!(
        !stored["vulnerabilities"].as_array().unwrap().is_empty(),
        "{stored}"
    );
    assert!(
        !stored.to_string().contains(MADE_UP),
        "refcat signed a forged result: {stored}"
    );
    // Nor does the exposure the worker logs after each walk read the forgery.
    let start = Instant::now();
    let exposure = loop {
        let logged = std::fs::read_to_string(worker.stdout.path()).unwrap();
        if logged.contains("\"cve\"") {
            break logged;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no exposure logged"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(!exposure.contains(MADE_UP), "{exposure}");
}

#[test]
fn a_look_alike_never_reaches_the_signed_aggregate_on_zot() {
    a_look_alike_never_reaches_the_signed_aggregate(Kind::Zot);
}

#[test]
fn a_look_alike_never_reaches_the_signed_aggregate_on_distribution() {
    a_look_alike_never_reaches_the_signed_aggregate(Kind::Distribution);
}

/// A look-alike of `artifact_type` on `subject`, newer than refcat's, whose one layer is
/// `layer_type` under `title`.
fn hostile_file(
    subject: &PlatformManifest,
    artifact_type: &str,
    layer_type: &str,
    title: &str,
) -> BuiltArtifact {
    ArtifactBuilder::new(artifact_type)
        .subject(subject.descriptor.clone())
        .annotation(CREATED, "2099-01-01T00:00:00Z")
        .layer(ArtifactLayer {
            media_type: layer_type.into(),
            data: bytes::Bytes::from_static(b"<script>fetch('/v1/images')</script>"),
            title: title.into(),
        })
        .build()
}

async fn downloads_are_files_never_pages(kind: Kind) {
    let (registry, _keys, _, platforms) = published_alpine(kind).await;
    let client = registry.client();
    let subject = amd64(&platforms);
    // An SPDX look-alike whose title holds a control character, and a Syft look-alike
    // whose "SBOM" is a script.
    for artifact in [
        hostile_file(subject, SPDX_JSON, SPDX_JSON, "x\u{1}.html"),
        hostile_file(subject, SYFT_JSON, "text/html", "app.html"),
    ] {
        client.push_artifact(&alpine(), &artifact).await.unwrap();
    }
    // Without --key nothing is checked: the newest look-alike is what is served.
    let serve = ServeProcess::start(&registry.host, &[]).await;
    let url = |file: &str| {
        format!(
            "{}/images/{ALPINE}/tags/3.19/download/{file}?platform=linux/amd64",
            serve.base
        )
    };
    // A layer of another type than the file's is no such file.
    let page = reqwest::get(url("sbom.syft.json")).await.unwrap();
    assert_eq!(page.status(), 404, "{:?}", page.headers());
    for (file, content_type) in [("sbom.spdx.json", "application/spdx+json")] {
        let response = reqwest::get(url(file)).await.unwrap();
        assert_eq!(response.status(), 200);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        assert_eq!(header("content-type"), content_type, "{file}");
        assert_eq!(
            header("content-disposition"),
            format!("attachment; filename=\"{file}\"")
        );
        assert!(
            header("content-security-policy").contains("sandbox"),
            "{file}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("refcat-signature"), "not-checked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_files_never_pages_on_zot() {
    downloads_are_files_never_pages(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_files_never_pages_on_distribution() {
    downloads_are_files_never_pages(Kind::Distribution).await;
}

async fn many_look_alikes_are_judged_once_and_never_read(kind: Kind) {
    let (registry, keys, _, platforms) = published_alpine(kind).await;
    let client = registry.client();
    let subject = amd64(&platforms);
    let real = listed(&client, &subject.descriptor.digest, GRYPE_JSON).await;
    let real = real[0].digest.clone();
    // More look-alikes than refcat reads at once, each newer than the real result.
    let mut forged = Vec::new();
    for i in 0..100 {
        let created = format!("2099-01-01T00:{:02}:{:02}Z", i / 60, i % 60);
        let data = made_up_grype_json() + &" ".repeat(i);
        let artifact = look_alike(subject, &created, grype_layer(data));
        client.push_artifact(&alpine(), &artifact).await.unwrap();
        forged.push(artifact);
    }
    let proxy = FaultProxy::start(&registry.host).await;
    let public = keys.path().join("refcat.pub");
    let args = ["--key", public.to_str().unwrap(), "--cache-ttl", "10m"];
    let serve = ServeProcess::start(&proxy.host, &args).await;
    // Views that read the same results, each its own rendered view: each look-alike is
    // judged once, and those found wanting make room for the next, so the real result
    // is found within two views and stays found.
    let path = format!("/v1/images/{ALPINE}/vulnerabilities/3.19");
    let mut found_at = None;
    for (n, query) in ["", "?severity=critical", "?severity=high"]
        .iter()
        .enumerate()
    {
        let (status, view) = serve.get(&format!("{path}{query}")).await;
        assert_eq!(status, 200, "{view}");
        let shown = &view["platforms"]["linux/amd64"];
        assert!(!view.to_string().contains(MADE_UP), "{view}");
        if shown["artifact"] == real.to_string() {
            assert_eq!(shown["signature"]["verdict"], "verified", "{shown}");
            found_at.get_or_insert(n);
        } else {
            assert!(found_at.is_none(), "found, then lost: {shown}");
            assert_eq!(shown["totals"], Value::Null, "{shown}");
        }
    }
    assert!(
        found_at.is_some_and(|n| n <= 1),
        "not found in two views: {found_at:?}"
    );
    let (status, tags) = serve.get(&format!("/v1/images/{ALPINE}/tags")).await;
    assert_eq!(status, 200, "{tags}");
    let seen = proxy.all_seen();
    for artifact in &forged {
        let hex = artifact.digest.digest();
        let lookups = seen
            .iter()
            .filter(|s| s.path.contains(hex) && !s.path.contains("/blobs/"))
            .filter(|s| s.path.contains("/referrers/") || s.path.contains("/manifests/sha256-"))
            .count();
        assert!(
            lookups <= 2,
            "{hex}: {lookups} signature lookups in four views"
        );
        let layer = &artifact.blobs.last().unwrap().0;
        assert!(
            proxy
                .seen(Method::GET, &format!("/blobs/{layer}"))
                .is_empty(),
            "a look-alike's result was read"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_look_alikes_are_judged_once_and_never_read_on_zot() {
    many_look_alikes_are_judged_once_and_never_read(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_look_alikes_are_judged_once_and_never_read_on_distribution() {
    many_look_alikes_are_judged_once_and_never_read(Kind::Distribution).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_created_never_decides_what_is_newest() {
    let (registry, _keys, _, platforms) = published_alpine(Kind::Zot).await;
    let client = registry.client();
    let subject = amd64(&platforms);
    let real = listed(&client, &subject.descriptor.digest, GRYPE_JSON).await;
    let real = real[0].digest.clone();
    // "~" sorts after every date as text.
    let forged = look_alike(subject, "~", grype_layer(made_up_grype_json()));
    client.push_artifact(&alpine(), &forged).await.unwrap();
    let serve = ServeProcess::start(&registry.host, &[]).await;
    let (status, view) = serve
        .get(&format!("/v1/images/{ALPINE}/vulnerabilities/3.19"))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["platforms"]["linux/amd64"]["artifact"],
        real.to_string()
    );
    assert!(!view.to_string().contains(MADE_UP));
}

async fn one_bad_repository_leaves_the_rest_of_the_catalog_readable(kind: Kind) {
    let (registry, _keys, reference, _) = published_alpine(kind).await;
    let client = registry.client();
    // debian's newest "result", claiming to be refcat's, is not grype JSON at all.
    push_fixture(&client, "debian").await;
    let debian: RepositoryName = "fixtures/debian".parse().unwrap();
    let debian_ref = format!("{}/fixtures/debian:12", registry.host);
    for subject in subjects(&client, &debian_ref).await {
        let broken = look_alike(
            &subject,
            "2099-01-01T00:00:00Z",
            grype_layer("not json".into()),
        );
        client.push_artifact(&debian, &broken).await.unwrap();
    }
    if kind == Kind::Distribution {
        // A README listed on alpine's index whose manifest is gone: without the
        // referrers API, the tag-schema listing still names it.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("README.md"), "# alpine\n").unwrap();
        let out = run_ok(Command::new(tool("oras")).current_dir(dir.path()).args([
            "attach",
            "--plain-http",
            "--artifact-type",
            "text/markdown",
            "--format",
            "json",
            &reference,
            "README.md:text/markdown",
        ]));
        let attached: Value = serde_json::from_slice(&out.stdout).unwrap();
        let digest: Digest = attached["digest"].as_str().unwrap().parse().unwrap();
        client.delete_manifest(&alpine(), &digest).await.unwrap();
    }
    // Without --key nothing is checked, so anyone with push access could do this.
    let serve = ServeProcess::start(&registry.host, &[]).await;
    let (status, view) = serve.get("/v1/vulnerabilities").await;
    assert_eq!(status, 200, "{view}");
    let affected: Vec<&Value> = view["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["affected"])
        .collect();
    assert!(affected.iter().any(|a| a.get(ALPINE).is_some()), "{view}");
    assert!(
        affected.iter().all(|a| a.get("fixtures/debian").is_none()),
        "{view}"
    );
    let (status, overview) = serve.get(&format!("/v1/images/{ALPINE}")).await;
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["readme"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_repository_leaves_the_rest_of_the_catalog_readable_on_zot() {
    one_bad_repository_leaves_the_rest_of_the_catalog_readable(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_repository_leaves_the_rest_of_the_catalog_readable_on_distribution() {
    one_bad_repository_leaves_the_rest_of_the_catalog_readable(Kind::Distribution).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_of_one_vulnerability_share_one_walk_of_the_catalog() {
    let (registry, _keys, _, _) = published_alpine(Kind::Zot).await;
    let serve = ServeProcess::start(&registry.host, &[]).await;
    // Ids nobody has: each a 404, each once asked a walk of the whole catalog.
    for id in ["CVE-0000-0001", "CVE-0000-0002", "CVE-0000-0003"] {
        let (status, _) = serve.get(&format!("/v1/vulnerabilities/{id}")).await;
        assert_eq!(status, 404);
    }
    let (status, _) = serve.get("/v1/vulnerabilities").await;
    assert_eq!(status, 200);
    let metrics = reqwest::get(format!("{}/metrics", serve.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\nrefcat_catalog_aggregates_total 1\n"),
        "one walk of the catalog per TTL, however many views read it: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refcats_result_stays_found_past_a_flood_after_its_verdict_expires() {
    let (registry, keys, _, platforms) = published_alpine(Kind::Zot).await;
    let client = registry.client();
    let subject = amd64(&platforms);
    let real = listed(&client, &subject.descriptor.digest, GRYPE_JSON).await[0]
        .digest
        .clone();
    for i in 0..100 {
        let created = format!("2099-01-01T00:{:02}:{:02}Z", i / 60, i % 60);
        let data = made_up_grype_json() + &" ".repeat(i);
        let artifact = look_alike(subject, &created, grype_layer(data));
        client.push_artifact(&alpine(), &artifact).await.unwrap();
    }
    // Verdicts last as long as views: two seconds.
    let public = keys.path().join("refcat.pub");
    let args = ["--key", public.to_str().unwrap(), "--cache-ttl", "2s"];
    let serve = ServeProcess::start(&registry.host, &args).await;
    let path = format!("/v1/images/{ALPINE}/vulnerabilities/3.19");
    let shown = |view: &Value| view["platforms"]["linux/amd64"]["artifact"] == real.to_string();
    let (_, first) = serve.get(&path).await;
    let (_, second) = serve.get(&format!("{path}?severity=critical")).await;
    assert!(shown(&first) || shown(&second), "not found in two views");
    // Every verdict has expired; the look-alikes, unjudged again, are newer by claim.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, third) = serve.get(&format!("{path}?severity=high")).await;
    assert_eq!(status, 200, "{third}");
    assert!(shown(&third), "lost once its verdict expired: {third}");
}
