//! Registry events into jobs. Four senders are understood: zot's events extension
//! (CloudEvents in binary mode over HTTP, the type in `Ce-Type`; structured over NATS), distribution's notifications
//! (`application/vnd.docker.distribution.events.v1+json`), Harbor's webhooks (its
//! default format, `PUSH_ARTIFACT`, or its CloudEvents format, `harbor.artifact.pushed`)
//! and Quay's repository-push webhook. Blob pushes, pulls, deletes and pushes of supporting tags (referrers
//! indexes, cosign `.sig`/`.att`/`.sbom`) yield no job.

use serde::Deserialize;

use super::Job;
use crate::digest::{self, Digest};
use crate::media_types::{DOCKER_MANIFEST, MANIFEST_TYPES, OCI_MANIFEST};
use crate::reference::{RepositoryName, Tag, Target};

/// The media type of distribution's notification envelopes.
pub const DISTRIBUTION_EVENTS: &str = "application/vnd.docker.distribution.events.v1+json";
/// The CloudEvents type zot sends for a manifest push.
pub const ZOT_IMAGE_UPDATED: &str = "zotregistry.image.updated";
/// The event type of Harbor's default webhook format for a push.
pub const HARBOR_PUSH_ARTIFACT: &str = "PUSH_ARTIFACT";
/// The CloudEvents type of Harbor's CloudEvents webhook format for a push.
pub const HARBOR_ARTIFACT_PUSHED: &str = "harbor.artifact.pushed";

/// Why a webhook body was refused. Nothing of a refused body is enqueued.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or not the shape its sender documents.
    #[error("invalid {sender} event: {reason}")]
    Invalid {
        /// Which sender the body was read as.
        sender: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A body that does not say it is JSON.
    #[error("a webhook body must be JSON: send it with Content-Type application/json (or the sender's +json type), not {0}")]
    NotJson(String),
    /// A body no known sender produces.
    #[error("unrecognised event: send distribution notifications ({DISTRIBUTION_EVENTS}), zot CloudEvents (Ce-Type header), Harbor's webhooks or Quay's repository-push webhook")]
    Unrecognised,
}

/// What a webhook body said.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Images to publish for.
    pub jobs: Vec<Job>,
    /// Image manifests pushed by digest alone: most are the platform manifests of an
    /// index whose own (tagged) event follows, and should wait for it, so that the
    /// index's job publishes them knowing the tag and the stream's history.
    pub settling: Vec<Job>,
    /// Events that concern no image: blobs, pulls, deletes, supporting tags.
    pub ignored: usize,
}

/// Reads a webhook body. `content_type` and `ce_type` are the request's headers.
pub fn parse(
    content_type: Option<&str>,
    ce_type: Option<&str>,
    body: &[u8],
) -> Result<Parsed, EventError> {
    let essence = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
    let json = essence.is_some_and(|e| {
        let e = e.to_ascii_lowercase();
        e == "application/json" || (e.starts_with("application/") && e.ends_with("+json"))
    });
    if !json {
        return Err(EventError::NotJson(
            essence.map_or("no Content-Type".into(), |e| format!("{e:?}")),
        ));
    }
    if let Some(kind) = ce_type {
        return zot(kind, body);
    }
    if essence == Some(DISTRIBUTION_EVENTS) {
        return distribution(body);
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| EventError::Invalid {
            sender: "webhook",
            reason: format!("not JSON: {e}"),
        })?;
    if value.get("events").is_some() {
        distribution(body)
    } else if value.get("updated_tags").is_some() {
        quay(body)
    } else if value.get("event_data").is_some() {
        harbor(&value, "event_data")
    } else if value.get("specversion").is_some()
        && value["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("harbor."))
    {
        harbor(&value, "data")
    } else if let (Some(kind), Some(_)) = (value["type"].as_str(), value.get("specversion")) {
        // A structured CloudEvent, as zot's NATS sink publishes it: the type beside the
        // data, not in a header.
        let data = serde_json::to_vec(&value["data"]).expect("JSON serializes");
        zot(kind, &data)
    } else {
        Err(EventError::Unrecognised)
    }
}

fn invalid(sender: &'static str) -> impl Fn(String) -> EventError {
    move |reason| EventError::Invalid { sender, reason }
}

fn repository(sender: &'static str, name: &str) -> Result<RepositoryName, EventError> {
    name.parse().map_err(|e| invalid(sender)(format!("{e}")))
}

/// A job for `digest` (a manifest of `media_type`), pushed under `tag` when the event
/// says so, unless the tag is a supporting one.
fn job(
    repository: RepositoryName,
    tag: Option<Tag>,
    digest: Digest,
    media_type: Option<&str>,
    parsed: &mut Parsed,
) {
    let (target, list) = match tag {
        Some(tag) if tag.is_supporting() => {
            parsed.ignored += 1;
            return;
        }
        Some(tag) => (Target::Pinned(tag, digest), &mut parsed.jobs),
        None if media_type.is_some_and(|m| [OCI_MANIFEST, DOCKER_MANIFEST].contains(&m)) => {
            (Target::Digest(digest), &mut parsed.settling)
        }
        None => (Target::Digest(digest), &mut parsed.jobs),
    };
    list.push(Job::new(repository, target));
}

fn tag(sender: &'static str, text: Option<&str>) -> Result<Option<Tag>, EventError> {
    text.map(|t| t.parse().map_err(|e| invalid(sender)(format!("{e}"))))
        .transpose()
}

fn zot(kind: &str, body: &[u8]) -> Result<Parsed, EventError> {
    const SENDER: &str = "zot";
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Updated {
        name: String,
        reference: String,
        digest: String,
        media_type: Option<String>,
    }
    let mut parsed = Parsed::default();
    if kind != ZOT_IMAGE_UPDATED {
        parsed.ignored = 1;
        return Ok(parsed);
    }
    let event: Updated =
        serde_json::from_slice(body).map_err(|e| invalid(SENDER)(e.to_string()))?;
    let repository = repository(SENDER, &event.name)?;
    let digest = digest::parse(&event.digest).map_err(|e| invalid(SENDER)(e.to_string()))?;
    let by_tag = (!event.reference.starts_with("sha256:")
        && !event.reference.starts_with("sha512:"))
    .then_some(event.reference.as_str());
    if event
        .media_type
        .as_deref()
        .is_some_and(|m| !MANIFEST_TYPES.contains(&m))
    {
        parsed.ignored = 1;
        return Ok(parsed);
    }
    let media_type = event.media_type.as_deref();
    job(
        repository,
        tag(SENDER, by_tag)?,
        digest,
        media_type,
        &mut parsed,
    );
    Ok(parsed)
}

fn distribution(body: &[u8]) -> Result<Parsed, EventError> {
    const SENDER: &str = "distribution";
    #[derive(Deserialize)]
    struct Envelope {
        events: Vec<Event>,
    }
    #[derive(Deserialize)]
    struct Event {
        action: String,
        target: EventTarget,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct EventTarget {
        media_type: Option<String>,
        digest: Option<String>,
        repository: String,
        tag: Option<String>,
    }
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| invalid(SENDER)(e.to_string()))?;
    let mut parsed = Parsed::default();
    for event in envelope.events {
        let target = event.target;
        let is_manifest = target
            .media_type
            .as_deref()
            .is_some_and(|m| MANIFEST_TYPES.contains(&m));
        let (true, true, Some(digest)) = (event.action == "push", is_manifest, target.digest)
        else {
            parsed.ignored += 1;
            continue;
        };
        let repository = repository(SENDER, &target.repository)?;
        let digest = digest::parse(&digest).map_err(|e| invalid(SENDER)(e.to_string()))?;
        let tag = tag(SENDER, target.tag.as_deref())?;
        job(
            repository,
            tag,
            digest,
            target.media_type.as_deref(),
            &mut parsed,
        );
    }
    Ok(parsed)
}

/// Harbor's payload: `type` (`PUSH_ARTIFACT`, or `harbor.artifact.pushed` in its
/// CloudEvents format) and, under `data_field`, the repository and the pushed
/// artifacts. A resource pushed by digest names the digest as its tag.
fn harbor(value: &serde_json::Value, data_field: &str) -> Result<Parsed, EventError> {
    const SENDER: &str = "harbor";
    #[derive(Deserialize)]
    struct EventData {
        #[serde(default)]
        resources: Vec<Resource>,
        repository: Option<Repository>,
    }
    #[derive(Deserialize)]
    struct Resource {
        digest: Option<String>,
        #[serde(default)]
        tag: String,
    }
    #[derive(Deserialize)]
    struct Repository {
        repo_full_name: String,
    }
    let mut parsed = Parsed::default();
    let kind = value["type"].as_str().unwrap_or_default();
    if kind != HARBOR_PUSH_ARTIFACT && kind != HARBOR_ARTIFACT_PUSHED {
        parsed.ignored = 1;
        return Ok(parsed);
    }
    let data = EventData::deserialize(&value[data_field])
        .map_err(|e| invalid(SENDER)(format!("{data_field}: {e}")))?;
    let name = data
        .repository
        .ok_or_else(|| invalid(SENDER)(format!("{data_field}.repository is missing")))?
        .repo_full_name;
    let repository = repository(SENDER, &name)?;
    if data.resources.is_empty() {
        return Err(invalid(SENDER)(format!("{data_field}.resources is empty")));
    }
    for resource in data.resources {
        let Some(digest) = resource.digest else {
            return Err(invalid(SENDER)("a resource has no digest".into()));
        };
        let digest = digest::parse(&digest).map_err(|e| invalid(SENDER)(e.to_string()))?;
        let by_digest = resource.tag.is_empty() || resource.tag.contains(':');
        let tag = tag(SENDER, (!by_digest).then_some(resource.tag.as_str()))?;
        // Harbor names no media type: a digest alone is published now, not settled.
        job(repository.clone(), tag, digest, None, &mut parsed);
    }
    Ok(parsed)
}

fn quay(body: &[u8]) -> Result<Parsed, EventError> {
    const SENDER: &str = "quay";
    #[derive(Deserialize)]
    struct Push {
        repository: String,
        updated_tags: Vec<String>,
    }
    let push: Push = serde_json::from_slice(body).map_err(|e| invalid(SENDER)(e.to_string()))?;
    let repository = repository(SENDER, &push.repository)?;
    let mut parsed = Parsed::default();
    for name in &push.updated_tags {
        match tag(SENDER, Some(name))?.expect("a name was given") {
            tag if tag.is_supporting() => parsed.ignored += 1,
            tag => parsed
                .jobs
                .push(Job::new(repository.clone(), Target::Tag(tag))),
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Notifications captured from docker-registry 2.8.2: two blob pushes, a manifest
    /// pushed by tag, one pushed by digest, a pull and a delete.
    fn captured() -> Vec<(String, Vec<u8>)> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/webhooks/distribution-2.8.2-events.jsonl"
        );
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                (
                    v["ct"].as_str().unwrap().to_string(),
                    serde_json::to_vec(&v["body"]).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn distribution_manifest_pushes_become_jobs_and_the_rest_is_ignored() {
        let (mut jobs, mut settling) = (Vec::new(), Vec::new());
        let mut ignored = 0;
        for (content_type, body) in captured() {
            let parsed = parse(Some(&content_type), None, &body).unwrap();
            jobs.extend(parsed.jobs);
            settling.extend(parsed.settling);
            ignored += parsed.ignored;
        }
        let keys = |jobs: &[Job]| jobs.iter().map(Job::key).collect::<Vec<_>>();
        assert_eq!(
            keys(&jobs),
            ["demo:v1@sha256:7d477475574a40f9a009f12ea465ac79a347dfc52f87f7f532f94dbd322133c9"]
        );
        assert_eq!(jobs[0].tag().map(|t| t.as_str()), Some("v1"));
        // Pushed by digest alone: it waits for a tagged index that may list it.
        assert_eq!(
            keys(&settling),
            ["demo@sha256:2d6ec0de53430480b852e732b39c1d435a7f675f77de3778ad65826e11cb8fc4"]
        );
        assert_eq!(ignored, 4);
    }

    #[test]
    fn zot_and_quay_events() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let body = serde_json::json!({
            "name": "team/app", "reference": "1.0", "digest": digest,
            "mediaType": "application/vnd.oci.image.index.v1+json", "manifest": "{}"
        });
        let parsed = parse(
            Some("application/json"),
            Some(ZOT_IMAGE_UPDATED),
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(parsed.jobs[0].key(), format!("team/app:1.0@{digest}"));
        let deleted = parse(
            Some("application/json"),
            Some("zotregistry.image.deleted"),
            b"{}",
        )
        .unwrap();
        for plain in [None, Some("text/plain")] {
            let refused = parse(plain, None, body.to_string().as_bytes()).unwrap_err();
            assert!(matches!(refused, EventError::NotJson(_)), "{refused}");
        }
        assert_eq!((deleted.jobs.len(), deleted.ignored), (0, 1));
        let signature = serde_json::json!({
            "name": "team/app", "reference": format!("sha256-{}.sig", "a".repeat(64)), "digest": digest,
        });
        let parsed = parse(
            Some("application/json"),
            Some(ZOT_IMAGE_UPDATED),
            signature.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!((parsed.jobs.len(), parsed.ignored), (0, 1));

        let quay = br#"{"repository":"team/app","docker_url":"quay.io/team/app","updated_tags":["1.0","latest"]}"#;
        let parsed = parse(Some("application/json"), None, quay).unwrap();
        let keys: Vec<String> = parsed.jobs.iter().map(Job::key).collect();
        assert_eq!(keys, ["team/app:1.0", "team/app:latest"]);
    }

    fn harbor_fixture(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/webhooks/");
        std::fs::read(format!("{dir}{name}")).unwrap()
    }

    #[test]
    fn harbor_pushes_in_both_formats_become_jobs() {
        let digest = "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c";
        let body = harbor_fixture("harbor-push-artifact.json");
        let parsed = parse(Some("application/json"), None, &body).unwrap();
        let keys: Vec<String> = parsed.jobs.iter().map(Job::key).collect();
        assert_eq!(keys, [format!("library/busybox:1.37@{digest}")]);
        // Pushed by digest, Harbor names the digest as the tag: no tag is recorded.
        let body = harbor_fixture("harbor-push-artifact.cloudevents.json");
        let parsed = parse(Some("application/cloudevents+json"), None, &body).unwrap();
        let keys: Vec<String> = parsed.jobs.iter().map(Job::key).collect();
        assert_eq!(keys, [format!("library/busybox@{digest}")]);

        let mut pulled: serde_json::Value =
            serde_json::from_slice(&harbor_fixture("harbor-push-artifact.json")).unwrap();
        pulled["type"] = "PULL_ARTIFACT".into();
        let parsed = parse(
            Some("application/json"),
            None,
            pulled.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!((parsed.jobs.len(), parsed.ignored), (0, 1));
        for broken in [
            serde_json::json!({"type": "PUSH_ARTIFACT", "event_data": {"resources": []}}),
            serde_json::json!({"type": "PUSH_ARTIFACT", "event_data": {
                "resources": [{"tag": "1"}], "repository": {"repo_full_name": "a/b"}}}),
            serde_json::json!({"type": "PUSH_ARTIFACT", "event_data": {
                "resources": [{"digest": "sha256:00", "tag": "1"}],
                "repository": {"repo_full_name": "a/b"}}}),
            serde_json::json!({"type": "PUSH_ARTIFACT", "event_data": {
                "resources": [{"digest": digest, "tag": "1"}],
                "repository": {"repo_full_name": "../etc"}}}),
        ] {
            assert!(
                parse(
                    Some("application/json"),
                    None,
                    broken.to_string().as_bytes()
                )
                .is_err(),
                "{broken}"
            );
        }
    }

    #[test]
    fn a_structured_zot_cloudevent_as_its_nats_sink_sends_it() {
        let digest = format!("sha256:{}", "c".repeat(64));
        let event = serde_json::json!({
            "specversion": "1.0", "id": "1", "source": "zotregistry.dev",
            "type": ZOT_IMAGE_UPDATED, "datacontenttype": "application/json",
            "data": { "name": "team/app", "reference": "2.0", "digest": digest,
                      "mediaType": "application/vnd.oci.image.index.v1+json", "manifest": "{}" }
        });
        let parsed = parse(
            Some("application/cloudevents+json"),
            None,
            event.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(parsed.jobs[0].key(), format!("team/app:2.0@{digest}"));
    }

    #[test]
    fn malformed_and_hostile_bodies_are_refused_whole() {
        let refused = |ct: Option<&str>, ce: Option<&str>, body: &str| {
            parse(ct, ce, body.as_bytes()).is_err()
        };
        assert!(refused(None, None, "not json"));
        assert!(refused(None, None, r#"{"hello":"world"}"#));
        assert!(refused(
            Some(DISTRIBUTION_EVENTS),
            None,
            r#"{"events":"x"}"#
        ));
        let hostile = serde_json::json!({"events": [{
            "action": "push",
            "target": {"mediaType": MANIFEST_TYPES[0], "digest": format!("sha256:{}", "b".repeat(64)), "repository": "../../etc"}
        }]});
        assert!(refused(
            Some(DISTRIBUTION_EVENTS),
            None,
            &hostile.to_string()
        ));
        let bad_digest = serde_json::json!({"name": "a", "reference": "1", "digest": "sha256:zz"});
        assert!(refused(
            None,
            Some(ZOT_IMAGE_UPDATED),
            &bad_digest.to_string()
        ));
        assert!(refused(
            None,
            None,
            r#"{"repository":"A B","updated_tags":["1"]}"#
        ));
    }
}
