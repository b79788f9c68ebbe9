//! Every record and annotation set `refcat publish` wrote validates against its Lexicon
//! document in `lexicons/`.

use crate::common;

use crate::common::lexicon::Lexicon;
use crate::common::Registry;
use refcat::artifact::Format;
use refcat::catalog::platforms::platform_manifests;
use refcat::media_types::VULNERABILITY_RECORD;
use refcat::reference::Reference;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_records_and_annotations_follow_their_lexicons() {
    let registry = Registry::start(common::Kind::Zot);
    let client = registry.client();
    let _keys = common::publish_fixtures(&registry).await;
    let refs = common::fixture_refs(&registry);

    let sbom = Lexicon::load("dev.refcat.annotations.sbom");
    let grype = Lexicon::load("dev.refcat.annotations.grype");
    let record = Lexicon::load("dev.refcat.vulnerabilityRecord");
    let mut checked = 0;
    for r in &refs {
        let reference: Reference = r.parse().unwrap();
        for subject in platform_manifests(&client, &reference, None).await.unwrap() {
            let existing = common::published::candidates(
                &client,
                &reference.repository,
                &subject.descriptor.digest,
            )
            .await;
            for stored in Format::ALL.iter().flat_map(|f| existing.of(*f)) {
                let manifest = stored.manifest();
                let annotations = serde_json::to_value(&manifest.annotations).unwrap();
                let lexicon = match Format::of(stored.descriptor()) {
                    Some(Format::GrypeJson) => &grype,
                    _ => &sbom,
                };
                let problems = lexicon.validate(&annotations);
                assert!(problems.is_empty(), "{}: {problems:?}", stored.digest());
                checked += 1;
                for layer in manifest
                    .layers
                    .iter()
                    .filter(|l| l.media_type == VULNERABILITY_RECORD)
                {
                    let data = client
                        .get_blob(&reference.repository, &layer.digest, None)
                        .await
                        .unwrap();
                    let value: Value = serde_json::from_slice(&data).unwrap();
                    let problems = record.validate(&value);
                    assert!(problems.is_empty(), "{}: {problems:?}", layer.digest);
                    checked += 1;
                }
            }
        }
    }
    // Four platform manifests, three artifacts each, and one record per Grype artifact.
    assert_eq!(checked, 4 * 3 + 4);

    // The validator is not a rubber stamp.
    let mut bad = serde_json::json!({
        "org.opencontainers.image.created": "yesterday",
        "dev.refcat.format": "cyclonedx",
        "dev.refcat.packages": "-1",
        "dev.refcat.surprise": "x",
    });
    assert_eq!(sbom.validate(&bad).len(), 3 + 4, "3 missing, 4 wrong");
    bad["dev.refcat.format"] = "syft-json".into();
    assert_eq!(sbom.validate(&bad).len(), 3 + 3);
}
