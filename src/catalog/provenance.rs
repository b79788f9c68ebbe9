//! The provenance view: SLSA provenance read from what the registry already holds.
//! Sources, in order: BuildKit attestation manifests inside the index; referrers of the
//! platform manifest that carry an in-toto statement, plain, in a DSSE envelope, or in
//! a Sigstore bundle (`cosign attest`); and cosign's legacy `sha256-<hex>.att` tag.
//! A statement in a DSSE envelope is checked against the configured keys.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::CatalogError;
use crate::artifact::annotations::BUNDLE_CONTENT;
use crate::artifact::Format;
use crate::digest::Digest;
use crate::media_types::{DSSE_ENVELOPE, IN_TOTO_JSON, SIGSTORE_BUNDLE_V03};
use crate::oci::{Descriptor, Manifest};
use crate::reference::{Reference, RepositoryName, Target};
use crate::registry::Client;
use crate::sign::dsse::Envelope;
use crate::trust::{Trust, Verdict};
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
const MAX_STATEMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Statement layers read per attestation manifest, and attestation referrers read per
/// platform manifest: anyone with push access can attach thousands, and each costs a
/// fetch and a signature check.
const MAX_STATEMENT_LAYERS: usize = 8;
const MAX_ATTESTATIONS: usize = 32;

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
    /// `buildkit-attestation`, `in-toto-referrer`, `sigstore-bundle-referrer` or
    /// `cosign-attestation` (the legacy `.att` tag).
    pub found_in: String,
    /// The verdict on the envelope's signature with the configured keys (`unsigned` for
    /// a bare statement, `not-checked` without keys).
    pub signature: Option<Verdict>,
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

/// The statement in a layer: plain in-toto JSON, or inside a DSSE envelope (itself
/// possibly inside a Sigstore bundle), with the envelope.
fn statement(media_type: &str, data: &[u8]) -> Option<(Value, Option<Envelope>)> {
    let mut document: Value = serde_json::from_slice(data).ok()?;
    if media_type == SIGSTORE_BUNDLE_V03 || document.get("dsseEnvelope").is_some() {
        document = document.get_mut("dsseEnvelope")?.take();
    }
    if document.get("payloadType").is_none() {
        return Some((document, None));
    }
    let envelope: Envelope = serde_json::from_value(document).ok()?;
    let statement = serde_json::from_slice(&envelope.payload().ok()?).ok()?;
    Some((statement, Some(envelope)))
}

/// The verdict on a statement's envelope (`not-checked` without keys).
fn verdict(envelope: Option<&Envelope>, trust: &Trust) -> Verdict {
    if !trust.checks() {
        return Verdict::NotChecked;
    }
    match envelope {
        None => Verdict::Unsigned,
        Some(e) if trust.keys().iter().any(|k| e.verify(k).is_ok()) => {
            Verdict::Verified { format: "dsse" }
        }
        Some(_) => Verdict::Invalid {
            reason: "no signature in the DSSE envelope verifies with the configured keys".into(),
        },
    }
}

/// The in-toto statement types whose subjects refcat reads.
const STATEMENT_TYPES: [&str; 2] = [
    "https://in-toto.io/Statement/v0.1",
    "https://in-toto.io/Statement/v1",
];

/// Whether `statement` is an in-toto statement about `platform` (one of its subjects
/// names the platform manifest's digest), as `cosign verify-attestation` requires. A
/// validly signed statement about another image says nothing about this one.
fn is_about(statement: &Value, platform: &Digest) -> bool {
    let typed = statement["_type"]
        .as_str()
        .is_some_and(|t| STATEMENT_TYPES.contains(&t));
    let subjects = statement["subject"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    typed
        && subjects
            .iter()
            .any(|s| s["digest"][platform.algorithm().as_ref()].as_str() == Some(platform.digest()))
}

/// Where to look for provenance, and what a source must be about.
struct Source {
    target: Target,
    found_in: &'static str,
    /// Whether the manifest is a referrer, whose own `subject` must be the platform
    /// manifest too (a tag-schema listing can name anything).
    referrer: bool,
}

/// What one source held.
enum Found {
    /// SLSA provenance about this platform manifest that the trust policy lets through.
    Provenance(Box<Provenance>),
    /// Only statements about another image.
    AboutAnother,
    /// Nothing that counts.
    Nothing,
}

/// The first SLSA provenance about `platform` among the layers of the manifest at
/// `source` that the trust policy lets through.
async fn in_manifest(
    client: &Client,
    repository: &RepositoryName,
    platform: &Digest,
    source: &Source,
    trust: &Trust,
) -> Result<Found, CatalogError> {
    let manifest = match client.get_manifest(repository, &source.target).await {
        Ok(m) => m,
        Err(e) if e.is_not_found() => return Ok(Found::Nothing),
        Err(e) => return Err(e.into()),
    };
    let Manifest::Image(manifest) = manifest.manifest else {
        return Ok(Found::Nothing);
    };
    if source.referrer && manifest.subject.as_ref().map(|s| &s.digest) != Some(platform) {
        return Ok(Found::AboutAnother);
    }
    let mut about_another = false;
    for layer in manifest
        .layers
        .iter()
        .filter(|l| {
            [IN_TOTO_JSON, DSSE_ENVELOPE, SIGSTORE_BUNDLE_V03].contains(&l.media_type.as_str())
        })
        .filter(|l| l.size <= MAX_STATEMENT_BYTES)
        .take(MAX_STATEMENT_LAYERS)
    {
        let data = client
            .get_blob(repository, &layer.digest, Some(MAX_STATEMENT_BYTES))
            .await?;
        let Some((statement, envelope)) = statement(&layer.media_type, &data) else {
            continue;
        };
        let Some(mut found) = from_statement(&statement, source.found_in) else {
            continue;
        };
        if !is_about(&statement, platform) {
            about_another = true;
            continue;
        }
        let verdict = verdict(envelope.as_ref(), trust);
        let hidden = trust.requires() && !verdict.is_verified();
        found.signature = Some(verdict);
        if !hidden {
            return Ok(Found::Provenance(Box::new(found)));
        }
    }
    Ok(if about_another {
        Found::AboutAnother
    } else {
        Found::Nothing
    })
}

/// Whether a referrer may carry an in-toto statement, by its artifactType or cosign's
/// bundle annotation.
fn may_hold_a_statement(referrer: &Descriptor, artifact_type: &str) -> Option<&'static str> {
    if artifact_type == SIGSTORE_BUNDLE_V03
        || referrer.annotations.get(BUNDLE_CONTENT).map(String::as_str) == Some("dsse-envelope")
    {
        Some("sigstore-bundle-referrer")
    } else if artifact_type.contains("in-toto") || artifact_type.contains("dsse") {
        Some("in-toto-referrer")
    } else {
        None
    }
}

/// The provenance of `platform`, or how many attestations about another image were
/// left out.
async fn for_platform(
    client: &Client,
    repository: &RepositoryName,
    platform: &Digest,
    attestations: &[Descriptor],
    trust: &Trust,
) -> Result<(Option<Provenance>, usize), CatalogError> {
    let platform_text = platform.to_string();
    let buildkit = attestations
        .iter()
        .filter(|d| d.annotations.get(REFERENCE_DIGEST) == Some(&platform_text))
        .map(|d| Source {
            target: Target::Digest(d.digest.clone()),
            found_in: "buildkit-attestation",
            referrer: false,
        });
    let mut referred = Vec::new();
    // refcat's own artifacts say what they are in the listing and cost nothing; a
    // referrer whose listed type says nothing costs a manifest read, so at most
    // MAX_ATTESTATIONS of those and of statements are looked at.
    let mut looked_at = 0;
    for referrer in client.referrers(repository, platform, None).await? {
        if Format::of(&referrer).is_some() {
            continue;
        }
        looked_at += 1;
        if looked_at > MAX_ATTESTATIONS {
            tracing::warn!(%repository, %platform, "more referrers than attestations anyone writes; only {MAX_ATTESTATIONS} are looked at");
            break;
        }
        let kind = super::artifacts::artifact_type(client, repository, &referrer).await?;
        if let Some(found_in) = may_hold_a_statement(&referrer, kind.as_deref().unwrap_or_default())
        {
            referred.push(Source {
                target: Target::Digest(referrer.digest),
                found_in,
                referrer: true,
            });
        }
    }
    // A digest cosign's `.att` tag cannot name (sha512) has no legacy attestation.
    let legacy = crate::tag_schema::cosign_tag(platform, ".att")
        .ok()
        .map(|tag| Source {
            target: Target::Tag(tag),
            found_in: "cosign-attestation",
            referrer: false,
        });
    // The first whose signature verifies wins; one that does not is shown only when
    // nothing verifies, so a pusher's unsigned statement cannot hide a signed one.
    let (mut about_another, mut unproved) = (0, None);
    for source in buildkit.chain(referred).chain(legacy) {
        match in_manifest(client, repository, platform, &source, trust).await? {
            Found::Provenance(found) => {
                let verified = found.signature.as_ref().is_some_and(Verdict::is_verified);
                if verified || !trust.checks() {
                    return Ok((Some(*found), about_another));
                }
                unproved.get_or_insert(*found);
            }
            Found::AboutAnother => about_another += 1,
            Found::Nothing => {}
        }
    }
    Ok((unproved, about_another))
}

/// The provenance view of `reference`.
pub async fn provenance(
    client: &Client,
    reference: &Reference,
    trust: &Trust,
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
        let (found, about_another) = for_platform(
            client,
            repository,
            &subject.descriptor.digest,
            &attestations,
            trust,
        )
        .await?;
        let reason = found.is_none().then(|| {
            let signed = if trust.requires() { " with a signature that verifies" } else { "" };
            let left_out = match about_another {
                0 => String::new(),
                n => format!(" ({n} attestation(s) about another image left out)"),
            };
            format!("no SLSA provenance{signed}: no BuildKit attestation, in-toto or Sigstore bundle referrer, or cosign .att for this manifest{left_out}")
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
