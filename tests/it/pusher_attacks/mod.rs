//! Attacks by someone with push access to a covered repository, run the way they would
//! run them: look-alike results attached with `oras attach`, a retagged `.sig`, a
//! rewritten tag-schema listing, hostile layer types. None may make refcat delete what
//! it does not own, sign what it did not verify, or show it as refcat's.

mod deletes;
mod views;

use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::Method;
use refcat::artifact::annotations::{CREATED, FORMAT, GRYPE_DB_BUILT};
use refcat::artifact::{ArtifactBuilder, ArtifactLayer, BuiltArtifact};
use refcat::catalog::platforms::PlatformManifest;
use refcat::digest::Digest;
use refcat::media_types::{GRYPE_JSON, OCI_INDEX, SPDX_JSON, SYFT_JSON};
use refcat::oci::Descriptor;
use refcat::reference::{RepositoryName, Target};
use refcat::registry::Client;
use serde_json::Value;

use crate::common::faults::FaultProxy;
use crate::common::published::{amd64, code, output, stderr, subjects, tokio_run};
use crate::common::serving::ServeProcess;
use crate::common::worker::Worker;
use crate::common::{
    free_port, push_fixture, refcat_publish, run_ok, tool, write_keys, Kind, Registry,
};

pub(crate) const ALPINE: &str = "fixtures/alpine";
/// The vulnerability the forgeries make up.
pub(crate) const MADE_UP: &str = "CVE-2099-0001";

pub(crate) fn alpine() -> RepositoryName {
    ALPINE.parse().unwrap()
}

/// A registry of `kind` with alpine:3.19 pushed, and a key pair in the returned
/// directory; `host/fixtures/alpine:3.19` and its platform manifests.
pub(crate) async fn pushed_alpine(
    kind: Kind,
) -> (Registry, tempfile::TempDir, String, Vec<PlatformManifest>) {
    let registry = Registry::start(kind);
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    push_fixture(&registry.client(), "alpine").await;
    let reference = format!("{}/{ALPINE}:3.19", registry.host);
    let platforms = subjects(&registry.client(), &reference).await;
    (registry, keys, reference, platforms)
}

/// [`pushed_alpine`], published by refcat with the key.
pub(crate) async fn published_alpine(
    kind: Kind,
) -> (Registry, tempfile::TempDir, String, Vec<PlatformManifest>) {
    let (registry, keys, reference, platforms) = pushed_alpine(kind).await;
    let mut publish = refcat_publish(keys.path());
    publish.arg(&reference);
    let out = output(publish).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    (registry, keys, reference, platforms)
}

/// The referrers of `subject` the registry lists with `artifact_type`.
pub(crate) async fn listed(
    client: &Client,
    subject: &Digest,
    artifact_type: &str,
) -> Vec<Descriptor> {
    let all = client.referrers(&alpine(), subject, None).await.unwrap();
    all.into_iter()
        .filter(|d| d.artifact_type.as_deref() == Some(artifact_type))
        .collect()
}

/// grype's JSON with one made-up critical match.
pub(crate) fn made_up_grype_json() -> String {
    serde_json::json!({
        "matches": [{
            "vulnerability": { "id": MADE_UP, "severity": "Critical",
                "fix": { "versions": [], "state": "not-fixed" } },
            "artifact": { "name": "forged", "version": "1.0", "type": "apk" }
        }]
    })
    .to_string()
}

/// A Grype-typed look-alike on `subject` that claims to be refcat's, made `created`, with
/// `layer` as its result.
pub(crate) fn look_alike(
    subject: &PlatformManifest,
    created: &str,
    layer: ArtifactLayer,
) -> BuiltArtifact {
    ArtifactBuilder::new(GRYPE_JSON)
        .subject(subject.descriptor.clone())
        .annotation(CREATED, created)
        .annotation(FORMAT, "grype-json")
        .annotation(GRYPE_DB_BUILT, "2099-01-01T00:00:00Z")
        .layer(layer)
        .build()
}

pub(crate) fn grype_layer(data: String) -> ArtifactLayer {
    ArtifactLayer {
        media_type: GRYPE_JSON.into(),
        data: data.into(),
        title: "vulnerabilities.grype.json".into(),
    }
}
