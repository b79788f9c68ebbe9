//! Attacks that aim at what refcat deletes: a retagged `.sig`, a manifest that holds
//! refcat's bundle and more. refcat deletes only what it proves its own.

use super::*;

/// `oras copy` of `from` to `to` in the same registry, as users copy images.
fn oras_copy(host: &str, from: &str, to: &str) {
    run_ok(Command::new(tool("oras")).args([
        "copy",
        "--from-plain-http",
        "--to-plain-http",
        &format!("{host}/{from}"),
        &format!("{host}/{to}"),
    ]));
}

/// A forced re-scan of amd64 that keeps one result, so refcat prunes its older one.
async fn republish_keeping_one(keys: &std::path::Path, reference: &str) {
    let mut again = refcat_publish(keys);
    again.args([
        "--platform",
        "linux/amd64",
        "--force",
        "--keep",
        "1",
        reference,
    ]);
    let out = output(again).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

async fn retagged_signatures_never_make_refcat_delete(kind: Kind) {
    let (registry, keys, reference, platforms) = published_alpine(kind).await;
    let client = registry.client();
    let subject = amd64(&platforms);
    let grype = listed(&client, &subject.descriptor.digest, GRYPE_JSON).await;
    assert_eq!(grype.len(), 1, "{grype:?}");
    let old = grype[0].digest.clone();
    let old_signatures = client.referrers(&alpine(), &old, None).await.unwrap();
    assert!(!old_signatures.is_empty());

    // The victim: another image in the same repository, pushed as users push.
    push_fixture(&client, "debian").await;
    oras_copy(&registry.host, "fixtures/debian:12", "fixtures/alpine:prod");
    let prod = client
        .get_manifest(&alpine(), &Target::Tag("prod".parse().unwrap()))
        .await
        .unwrap();
    // cosign's `.sig` tag of refcat's Grype result (its digest is public), pointed at
    // the victim.
    let sig: refcat::reference::Tag = format!("sha256-{}.sig", old.digest()).parse().unwrap();
    client
        .put_manifest(
            &alpine(),
            &Target::Tag(sig.clone()),
            &prod.media_type,
            prod.bytes.clone(),
        )
        .await
        .unwrap();
    if kind == Kind::Distribution {
        // No referrers API: the result's tag-schema listing names the victim as one of
        // its signatures.
        let schema = Target::Tag(format!("sha256-{}", old.digest()).parse().unwrap());
        let fetched = client.get_manifest(&alpine(), &schema).await.unwrap();
        let mut index: Value = serde_json::from_slice(&fetched.bytes).unwrap();
        index["manifests"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::to_value(prod.descriptor()).unwrap());
        let bytes = bytes::Bytes::from(serde_json::to_vec(&index).unwrap());
        client
            .put_manifest(&alpine(), &schema, OCI_INDEX, bytes)
            .await
            .unwrap();
    }

    // A re-scan that keeps one result prunes refcat's older one, with its signatures.
    republish_keeping_one(keys.path(), &reference).await;

    let head = |digest: &Digest| {
        let client = client.clone();
        let target = Target::Digest(digest.clone());
        async move { client.head_manifest(&alpine(), &target).await.unwrap() }
    };
    assert!(
        head(&prod.digest).await.is_some(),
        "refcat deleted a manifest it does not own"
    );
    let tagged = client
        .head_manifest(&alpine(), &Target::Tag("prod".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(tagged.map(|d| d.digest), Some(prod.digest.clone()));
    assert!(
        head(&old).await.is_none(),
        "refcat's own older result is pruned"
    );
    for signature in &old_signatures {
        if signature.digest != prod.digest {
            assert!(
                head(&signature.digest).await.is_none(),
                "its own signature is pruned"
            );
        }
    }
    let sig_tag = client
        .head_manifest(&alpine(), &Target::Tag(sig))
        .await
        .unwrap();
    assert_eq!(sig_tag.map(|d| d.digest), Some(prod.digest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retagged_signatures_never_make_refcat_delete_on_zot() {
    retagged_signatures_never_make_refcat_delete(Kind::Zot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retagged_signatures_never_make_refcat_delete_on_distribution() {
    retagged_signatures_never_make_refcat_delete(Kind::Distribution).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_holds_a_copied_bundle_and_more_is_never_pruned() {
    let (registry, keys, reference, platforms) = published_alpine(Kind::Zot).await;
    let client = registry.client();
    let subject = amd64(&platforms);
    let old = listed(&client, &subject.descriptor.digest, GRYPE_JSON).await[0]
        .digest
        .clone();
    // refcat's own bundle of its Grype result, copied into a manifest of the pusher's
    // that holds more than the bundle, with the same subject.
    let bundles = client.referrers(&alpine(), &old, None).await.unwrap();
    let bundle = client
        .get_manifest(&alpine(), &Target::Digest(bundles[0].digest.clone()))
        .await
        .unwrap();
    let mut manifest: Value = serde_json::from_slice(&bundle.bytes).unwrap();
    let extra = manifest["config"].clone();
    manifest["layers"].as_array_mut().unwrap().push(extra);
    let bytes = bytes::Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let kept: refcat::reference::Tag = "kept".parse().unwrap();
    client
        .put_manifest(
            &alpine(),
            &Target::Tag(kept.clone()),
            &bundle.media_type,
            bytes,
        )
        .await
        .unwrap();

    republish_keeping_one(keys.path(), &reference).await;
    let gone = client.head_manifest(&alpine(), &Target::Digest(old)).await;
    assert!(
        gone.unwrap().is_none(),
        "refcat's own older result is pruned"
    );
    let survivor = client.head_manifest(&alpine(), &Target::Tag(kept)).await;
    assert!(
        survivor.unwrap().is_some(),
        "refcat deleted a manifest that holds more than its signature"
    );
}
