//! The provenance view: SLSA provenance read from what the registry already holds.
//! Sources, in order: BuildKit attestation manifests inside the index, in-toto
//! referrers of the platform manifest, and cosign's legacy `sha256-<hex>.att` tag.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use super::CatalogError;
use crate::artifact::media_types::IN_TOTO_JSON;
use crate::digest::{self, Digest};
use crate::oci::{Descriptor, Manifest};
use crate::reference::{Reference, RepositoryName, Target};
use crate::registry::Client;

const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
const MAX_STATEMENT_BYTES: u64 = 16 * 1024 * 1024;

/// Provenance per platform.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceView {
    /// As asked.
    pub reference: String,
    /// By platform.
    pub platforms: BTreeMap<String, PlatformProvenance>,
}

/// One platform's provenance, or why there is none.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformProvenance {
    /// The platform manifest's digest.
    pub digest: String,
    /// What was found; `None` when nothing was.
    pub provenance: Option<Provenance>,
    /// Why `provenance` is `None`.
    pub reason: Option<String>,
}

/// The fields of an SLSA provenance predicate (v0.2 or v1) the catalog shows.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// `buildkit-attestation`, `in-toto-referrer` or `cosign-attestation`.
    pub found_in: String,
    /// The statement's predicate type.
    pub predicate_type: String,
    /// Who built it.
    pub builder_id: Option<String>,
    /// How.
    pub build_type: Option<String>,
    /// From which source repository.
    pub source_repository: Option<String>,
    /// At which revision.
    pub source_revision: Option<String>,
    /// The build's parameters, as the predicate states them.
    #[schema(value_type = Object)]
    pub invocation: Option<Value>,
    /// When the build started.
    pub started_on: Option<String>,
    /// When it finished.
    pub finished_on: Option<String>,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Reads an in-toto statement whose predicate is SLSA provenance.
fn from_statement(statement: &Value, found_in: &str) -> Option<Provenance> {
    let predicate_type = statement["predicateType"].as_str()?;
    if !predicate_type.starts_with("https://slsa.dev/provenance/") {
        return None;
    }
    let p = &statement["predicate"];
    let mut out = Provenance {
        found_in: found_in.into(),
        predicate_type: predicate_type.into(),
        ..Provenance::default()
    };
    if predicate_type.ends_with("/v0.2") {
        out.builder_id = text(&p["builder"]["id"]);
        out.build_type = text(&p["buildType"]);
        let source = &p["invocation"]["configSource"];
        out.source_repository = text(&source["uri"]);
        out.source_revision = source["digest"]
            .as_object()
            .and_then(|d| d.values().next())
            .and_then(text);
        out.invocation = Some(p["invocation"].clone()).filter(|v| !v.is_null());
        out.started_on = text(&p["metadata"]["buildStartedOn"]);
        out.finished_on = text(&p["metadata"]["buildFinishedOn"]);
    } else {
        let definition = &p["buildDefinition"];
        out.builder_id = text(&p["runDetails"]["builder"]["id"]);
        out.build_type = text(&definition["buildType"]);
        let source = definition["resolvedDependencies"]
            .as_array()
            .and_then(|deps| deps.first());
        out.source_repository = source.and_then(|s| text(&s["uri"]));
        out.source_revision = source
            .and_then(|s| s["digest"].as_object())
            .and_then(|d| d.values().next())
            .and_then(text);
        out.invocation = Some(definition["externalParameters"].clone()).filter(|v| !v.is_null());
        out.started_on = text(&p["runDetails"]["metadata"]["startedOn"]);
        out.finished_on = text(&p["runDetails"]["metadata"]["finishedOn"]);
    }
    Some(out)
}

/// The statement in a layer: plain in-toto JSON, or a DSSE envelope around it.
fn statement(media_type: &str, data: &[u8]) -> Option<Value> {
    let document: Value = serde_json::from_slice(data).ok()?;
    if media_type == DSSE_ENVELOPE || document.get("payloadType").is_some() {
        let payload = BASE64.decode(document["payload"].as_str()?).ok()?;
        return serde_json::from_slice(&payload).ok();
    }
    Some(document)
}

/// The first SLSA provenance among the layers of the manifest at `target`.
async fn in_manifest(
    client: &Client,
    repository: &RepositoryName,
    target: Target,
    found_in: &str,
) -> Result<Option<Provenance>, CatalogError> {
    let manifest = match client.get_manifest(repository, &target).await {
        Ok(m) => m,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Manifest::Image(manifest) = manifest.manifest else {
        return Ok(None);
    };
    for layer in manifest
        .layers
        .iter()
        .filter(|l| l.media_type == IN_TOTO_JSON || l.media_type == DSSE_ENVELOPE)
    {
        let data = client
            .get_blob(repository, &layer.digest, Some(MAX_STATEMENT_BYTES))
            .await?;
        if let Some(found) = statement(&layer.media_type, &data)
            .as_ref()
            .and_then(|s| from_statement(s, found_in))
        {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

async fn for_platform(
    client: &Client,
    repository: &RepositoryName,
    platform: &Digest,
    attestations: &[Descriptor],
) -> Result<Option<Provenance>, CatalogError> {
    let platform_text = platform.to_string();
    for attestation in attestations
        .iter()
        .filter(|d| d.annotations.get(REFERENCE_DIGEST) == Some(&platform_text))
    {
        let target = Target::Digest(attestation.digest.clone());
        if let Some(found) = in_manifest(client, repository, target, "buildkit-attestation").await?
        {
            return Ok(Some(found));
        }
    }
    for referrer in client.referrers(repository, platform, None).await? {
        let listed = referrer.artifact_type.as_deref().unwrap_or_default();
        if listed.contains("in-toto") || listed.contains("dsse") {
            let target = Target::Digest(referrer.digest.clone());
            if let Some(found) = in_manifest(client, repository, target, "in-toto-referrer").await?
            {
                return Ok(Some(found));
            }
        }
    }
    let att = format!("{}.att", digest::referrers_tag(platform));
    let target = Target::Tag(att.parse().expect("an algorithm-hex.att tag is valid"));
    in_manifest(client, repository, target, "cosign-attestation").await
}

/// The provenance view of `reference`.
pub async fn provenance(
    client: &Client,
    reference: &Reference,
) -> Result<ProvenanceView, CatalogError> {
    let repository = &reference.repository;
    let top = client.get_manifest(repository, &reference.target).await?;
    let attestations: Vec<Descriptor> = match &top.manifest {
        Manifest::Index(index) => index
            .manifests
            .iter()
            .filter(|d| {
                d.annotations.get(REFERENCE_TYPE).map(String::as_str)
                    == Some("attestation-manifest")
            })
            .cloned()
            .collect(),
        Manifest::Image(_) => Vec::new(),
    };
    let mut platforms = BTreeMap::new();
    for subject in super::platforms::platform_manifests(client, reference, None).await? {
        let found = for_platform(
            client,
            repository,
            &subject.descriptor.digest,
            &attestations,
        )
        .await?;
        let reason = found.is_none().then(|| {
            "no SLSA provenance: no BuildKit attestation, in-toto referrer or cosign .att for this manifest".to_string()
        });
        platforms.insert(
            subject.platform.to_string(),
            PlatformProvenance {
                digest: subject.descriptor.digest.to_string(),
                provenance: found,
                reason,
            },
        );
    }
    Ok(ProvenanceView {
        reference: reference.to_string(),
        platforms,
    })
}
