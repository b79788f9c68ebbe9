//! The history view: the releases of a stream. The floating tag `S` stands for the
//! immutable tags `S-…` and `S.…`; each distinct digest among them is a release. The
//! worker's release log adds the releases that tags have moved away from.

use std::collections::BTreeMap;

use futures_util::{stream, StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use super::tags::{selected, TagEntry};
use super::CatalogError;
use crate::artifact::annotations::RELEASE_GONE;
use crate::reference::{in_stream, RepositoryName, Tag, Target};
use crate::registry::Client;
use crate::scan::report::Severity;
use crate::trust::{Checking, Trust};

/// Moved-away releases read at once.
const CONCURRENCY: usize = 8;

/// The releases of one stream, newest first.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryView {
    /// The repository.
    pub repository: String,
    /// `checked` with keys; `not-checked` when the catalog runs without them.
    pub signatures: Checking,

    /// The stream (its floating tag).
    pub stream: String,
    /// Its releases, newest first.
    pub releases: Vec<Release>,
}

/// One release: a digest and the tags that point at it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// The manifest or index digest.
    pub digest: String,
    /// The earliest `created` across its platforms.
    pub created: Option<String>,
    /// The stream's tags that point at it, or, for a release the tags have moved away
    /// from, the tags the worker saw on it.
    pub tags: Vec<String>,
    /// Whether the floating tag points at it now.
    pub current: bool,
    /// Matches per severity, summed over platforms.
    pub vulnerabilities: Option<BTreeMap<Severity, usize>>,
}

/// The history of `stream` in `repository`.
pub async fn history(
    client: &Client,
    repository: &RepositoryName,
    stream: &Tag,
    trust: &Trust,
) -> Result<HistoryView, CatalogError> {
    let view = selected(client, repository, trust, |t| {
        in_stream(t.as_str(), stream.as_str())
    })
    .await?;
    let members: Vec<&TagEntry> = view.tags.iter().collect();
    // Releases the tags have left come from the worker's log, and only as the catalog's
    // trust lets it be read: with keys, only a log its signature proves the worker's.
    let log = crate::records::release_log::read(client, repository, trust).await?;
    let recorded = log.map(|log| log.get().releases()).unwrap_or_default();
    let gone = recorded
        .into_iter()
        .filter(|r| !r.descriptor.annotations.contains_key(RELEASE_GONE))
        .filter_map(|recorded| {
            let tags: Vec<String> = recorded
                .tags
                .into_iter()
                .filter(|t| in_stream(t, stream.as_str()))
                .collect();
            let digest = recorded.descriptor.digest;
            let current = members.iter().any(|m| m.digest == digest.to_string());
            (!tags.is_empty() && !current).then_some((digest, tags))
        });
    // Read several at a time, as the tags view reads its tags.
    let moved: Vec<_> = stream::iter(gone)
        .map(|(digest, tags)| async move {
            let target = Target::Digest(digest);
            match super::tags::entry(client, repository, target, "", false, trust).await {
                Ok(entry) => Ok(Some((entry, tags))),
                // Deleted from the registry since: no longer a release anyone can pull.
                Err(CatalogError::Registry(e)) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let moved: Vec<_> = moved.into_iter().flatten().collect();
    if members.is_empty() && moved.is_empty() {
        return Err(CatalogError::Registry(
            crate::registry::RegistryError::NotFound {
                what: format!("stream {stream} of {repository}"),
                code: "TAG_UNKNOWN".into(),
            },
        ));
    }
    let mut releases: BTreeMap<&str, Release> = BTreeMap::new();
    for entry in members {
        let release = releases.entry(&entry.digest).or_insert_with(|| Release {
            digest: entry.digest.clone(),
            created: entry.oldest_created.clone(),
            tags: Vec::new(),
            current: false,
            vulnerabilities: entry.vulnerabilities.clone(),
        });
        release.tags.push(entry.tag.clone());
        release.current |= entry.tag == stream.as_str();
    }
    for (entry, tags) in &moved {
        releases.insert(
            &entry.digest,
            Release {
                digest: entry.digest.clone(),
                created: entry.oldest_created.clone(),
                tags: tags.clone(),
                current: false,
                vulnerabilities: entry.vulnerabilities.clone(),
            },
        );
    }
    let mut releases: Vec<Release> = releases.into_values().collect();
    releases.sort_by(|a, b| (&b.created, &b.digest).cmp(&(&a.created, &a.digest)));
    Ok(HistoryView {
        repository: repository.to_string(),
        signatures: trust.signatures(),
        stream: stream.to_string(),
        releases,
    })
}
