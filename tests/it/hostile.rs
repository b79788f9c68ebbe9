//! Odd or hostile registries: refcat returns errors or leaves things out, and never
//! falls over.

use refcat::artifact::media_types::{OCI_MANIFEST, SYFT_JSON};
use refcat::artifact::{ArtifactBuilder, ArtifactLayer};
use refcat::reference::{RepositoryName, Target};

use crate::common::{push_fixture, Kind, Registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sha512_subject_gets_a_truncated_tag_schema_tag() {
    let registry = Registry::start(Kind::Distribution);
    let client = registry.client();
    push_fixture(&client, "alpine").await;
    let repository: RepositoryName = "fixtures/alpine".parse().unwrap();
    // A subject named by a sha512 digest (distribution 2.8 stores only sha256
    // manifests, but an artifact may name any subject).
    let bytes = bytes::Bytes::from_static(b"a manifest stored elsewhere");
    let hex: String = {
        use sha2::Digest as _;
        sha2::Sha512::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let sha512 = refcat::digest::parse(&format!("sha512:{hex}")).unwrap();
    let artifact = ArtifactBuilder::new(SYFT_JSON)
        .subject(refcat::oci::Descriptor::new(
            OCI_MANIFEST,
            sha512.clone(),
            bytes.len() as u64,
        ))
        .layer(ArtifactLayer {
            media_type: SYFT_JSON.into(),
            data: bytes::Bytes::from_static(b"{}"),
            title: "sbom.syft.json".into(),
        })
        .build();
    client.push_artifact(&repository, &artifact).await.unwrap();

    // The spec's schema: the algorithm, then the first 64 hex characters.
    let tag = format!("sha512-{}", &hex[..64]);
    let index = client
        .get_manifest(&repository, &Target::Tag(tag.parse().unwrap()))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&index.bytes).contains(&artifact.digest.to_string()));
    let listed = client.referrers(&repository, &sha512, None).await.unwrap();
    assert_eq!(listed.len(), 1);

    // A signature check of a sha512 artifact finds no bundle and no `.sig` tag (cosign's
    // would be 139 characters): unsigned, not a panic.
    let key = refcat::sign::KeyPair::generate().public_key();
    let verdict = refcat::catalog::signatures::verify(&client, &repository, &sha512, &[key])
        .await
        .unwrap();
    assert_eq!(verdict, refcat::catalog::signatures::Verdict::Unsigned);
}
