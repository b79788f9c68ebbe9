//! `serve --aggregate-repository` reads the repository summaries the worker keeps: a
//! cold tags page costs one `HEAD` per tag (plus the listing and the summary), and the
//! directory's counts and filters come from the summaries, with no tag walked, while
//! answering what a walk answers.

use std::time::{Duration, Instant};

use refcat::catalog::summary::RepositorySummary;
use refcat::reference::{RepositoryName, Target};
use refcat::trust::Trust;

use crate::common::faults::FaultProxy;
use crate::common::serving::ServeProcess;
use crate::common::worker::Worker;
use crate::common::{self, free_port, testdata, Kind, Registry};

const STORED_IN: &str = "refcat/catalog";
const IMAGES: usize = 30;

/// Pushes `IMAGES` distinct single-platform images to `fan/many` (debian's layers, each
/// manifest with its own annotation), tagged `1.0` … `1.29`.
async fn distinct_images(registry: &Registry) -> RepositoryName {
    let client = registry.client();
    let mut image = crate::fixture::build(&testdata().join("images/debian")).unwrap();
    image.repository = "fan/many".parse().unwrap();
    crate::fixture::push(&client, &image).await.unwrap();
    for n in 0..IMAGES {
        let mut manifest: serde_json::Value = serde_json::from_slice(&image.top.bytes).unwrap();
        manifest["annotations"] = serde_json::json!({ "dev.refcat.test.copy": n.to_string() });
        client
            .put_manifest(
                &image.repository,
                &Target::Tag(format!("1.{n}").parse().unwrap()),
                &image.top.media_type,
                serde_json::to_vec(&manifest).unwrap().into(),
            )
            .await
            .unwrap();
    }
    image.repository
}

/// Waits until the worker's summary of `repository` holds every tag with a result.
async fn summarised(
    registry: &Registry,
    repository: &RepositoryName,
    own: &Trust,
    worker: &Worker,
) {
    let stored_in: RepositoryName = STORED_IN.parse().unwrap();
    let start = Instant::now();
    loop {
        let found = RepositorySummary::stored(&registry.client(), &stored_in, repository, own)
            .await
            .unwrap();
        let done = found.is_some_and(|s| {
            let s = s.document.get();
            s.tags.len() == IMAGES + 2
                && s.images
                    .values()
                    .all(|i| i.platforms.iter().all(|p| p.matches.is_some()))
        });
        if done {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no complete summary of {repository}:\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn views_read_the_summaries_not_every_tag() {
    // The worker's helpers block; the proxy and the views need a runtime that lasts.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let registry = Registry::start(Kind::Zot);
    let repository = runtime.block_on(distinct_images(&registry));
    let keys = tempfile::tempdir().unwrap();
    let pair = common::write_keys(keys.path());
    let own = Trust::own(pair.public_key());
    let worker = Worker::start(
        &registry,
        keys.path(),
        free_port(),
        &[
            ("REFCAT_AGGREGATE_REPOSITORY", STORED_IN.as_ref()),
            ("REFCAT_CONCURRENCY", "4".as_ref()),
        ],
    );
    runtime.block_on(async {
        summarised(&registry, &repository, &own, &worker).await;

        let public = keys.path().join("refcat.pub");
        let key = ["--key", public.to_str().unwrap()];
        let stored = [&key[..], &["--aggregate-repository", STORED_IN]].concat();
        let proxy = FaultProxy::start(&registry.host).await;
        let from_summaries = ServeProcess::start(&proxy.host, &stored).await;
        let walking = ServeProcess::start(&registry.host, &key).await;

        // A cold tags page: one HEAD per tag, besides the listing and the summary.
        let path = format!("/v1/images/{repository}/tags?per_page={IMAGES}");
        let (status, page) = from_summaries.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let seen = proxy.all_seen();
        let heads = seen
            .iter()
            .filter(|s| s.method == axum::http::Method::HEAD && s.path.contains("/manifests/1."))
            .count();
        let others = seen.len() - heads;
        assert_eq!(heads, IMAGES, "{seen:?}");
        assert!(
            others <= 10,
            "{others} requests besides the HEADs: {seen:?}"
        );
        // What a walk of the same tags shows.
        let (_, walked) = walking.get(&path).await;
        assert_eq!(page["tags"], walked["tags"]);
        assert_eq!(page["total"], walked["total"]);

        // The directory, its counts and an architecture filter: no tag listed or resolved.
        let before = proxy.all_seen().len();
        for query in [
            "",
            "?architecture=amd64",
            "?highest=critical",
            "?signed=true",
        ] {
            let (status, summarised) = from_summaries.get(&format!("/v1/images{query}")).await;
            assert_eq!(status, 200, "{summarised}");
            let (_, walked) = walking.get(&format!("/v1/images{query}")).await;
            // The walking view lists the summaries' repository too; the summaries leave it out.
            let ours = |view: &serde_json::Value| -> Vec<serde_json::Value> {
                view["images"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|i| i["name"] == repository.as_str())
                    .cloned()
                    .collect()
            };
            assert_eq!(ours(&summarised), ours(&walked), "{query}");
            let found = ours(&summarised).len();
            assert_eq!(
                found,
                usize::from(query != "?highest=critical"),
                "{query}: {summarised}"
            );
        }
        let directory: Vec<String> = proxy.all_seen()[before..]
            .iter()
            .map(|s| s.path.clone())
            .collect();
        assert!(
            directory
                .iter()
                .all(|p| !p.contains("/tags/list") && !p.contains(&format!("{repository}/"))),
            "{directory:?}"
        );
    });
}
