//! The release log: per repository, an OCI index tagged `refcat-releases` that lists
//! every image the worker saw under a tag, with the tags it carried and when it was
//! first seen. A tag can move; the log keeps the release it left, so the history view
//! still shows it and the registry's garbage collector keeps it (an index references
//! it), and the worker keeps it pullable by digest where the registry would stop
//! serving it ([`keep_pullable`]).
//!
//! The tagged head is rewritten on every change, so it is kept small: past
//! [`HEAD_LIMIT`] releases, the oldest are sealed into an index of their own, pushed by
//! digest and listed in the head as a segment. A sealed release that changes later (a
//! new tag, found kept) is copied back into the head, whose copy wins.

use std::collections::BTreeSet;

use crate::artifact::annotations::{
    RELEASE_FIRST_SEEN, RELEASE_KEPT, RELEASE_SEGMENT, RELEASE_TAGS,
};
use crate::digest::Digest;
use crate::media_types::{OCI_INDEX, RELEASE_LOG};
use crate::oci::{Descriptor, ImageIndex, Manifest};
use crate::reference::in_stream;
use crate::reference::{RepositoryName, Tag, Target, RELEASE_LOG_TAG};
use crate::registry::{Client, RegistryError};

/// One release in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The release's manifest or index.
    pub descriptor: Descriptor,
    /// Every tag seen on it.
    pub tags: BTreeSet<String>,
}

fn target() -> Target {
    Target::Tag(
        RELEASE_LOG_TAG
            .parse()
            .expect("the release log tag is valid"),
    )
}

/// Releases the tagged head holds before the oldest are sealed into a segment.
pub const HEAD_LIMIT: usize = 500;

/// A repository's release log as read: every release, oldest segment first.
#[derive(Clone, Debug)]
pub struct ReleaseLog {
    /// Every release, the sealed segments' first, then the head's.
    pub index: ImageIndex,
    /// The sealed segments, oldest first.
    segments: Vec<Descriptor>,
    /// The releases as their segments hold them, by digest, to tell what changed.
    sealed: std::collections::HashMap<Digest, Descriptor>,
}

impl ReleaseLog {
    fn empty() -> Self {
        ReleaseLog {
            index: empty(),
            segments: Vec::new(),
            sealed: Default::default(),
        }
    }
}

/// The log of `repository`, its segments included; empty when there is none.
pub async fn read(
    client: &Client,
    repository: &RepositoryName,
) -> Result<ReleaseLog, RegistryError> {
    let head = match client.get_manifest(repository, &target()).await {
        Ok(fetched) => match fetched.manifest {
            Manifest::Index(index) => index,
            Manifest::Image(_) => return Ok(ReleaseLog::empty()),
        },
        Err(e) if e.is_not_found() => return Ok(ReleaseLog::empty()),
        Err(e) => return Err(e),
    };
    let (segments, head_releases): (Vec<Descriptor>, Vec<Descriptor>) = head
        .manifests
        .iter()
        .cloned()
        .partition(|d| d.annotations.contains_key(RELEASE_SEGMENT));
    let mut sealed_parts = Vec::with_capacity(segments.len());
    for segment in &segments {
        let fetched = client
            .get_manifest(repository, &Target::Digest(segment.digest.clone()))
            .await?;
        match fetched.manifest {
            Manifest::Index(index) => sealed_parts.push(index.manifests),
            Manifest::Image(_) => {
                return Err(RegistryError::InvalidResponse {
                    what: format!("release log segment {repository}@{}", segment.digest),
                    reason: "a manifest where an index was expected".into(),
                })
            }
        }
    }
    Ok(assemble(head, segments, sealed_parts, head_releases))
}

/// The log from its head, its segments and what they hold: later copies of a release
/// (a newer segment, the head) replace earlier ones in place.
fn assemble(
    head: ImageIndex,
    segments: Vec<Descriptor>,
    sealed_parts: Vec<Vec<Descriptor>>,
    head_releases: Vec<Descriptor>,
) -> ReleaseLog {
    let mut sealed = std::collections::HashMap::new();
    let mut all: Vec<Descriptor> = Vec::new();
    let mut position: std::collections::HashMap<Digest, usize> = Default::default();
    let mut place = |d: Descriptor, all: &mut Vec<Descriptor>| match position.get(&d.digest) {
        Some(&i) => all[i] = d,
        None => {
            position.insert(d.digest.clone(), all.len());
            all.push(d);
        }
    };
    for release in sealed_parts.into_iter().flatten() {
        sealed.insert(release.digest.clone(), release.clone());
        place(release, &mut all);
    }
    for release in head_releases {
        place(release, &mut all);
    }
    ReleaseLog {
        index: ImageIndex {
            manifests: all,
            ..head
        },
        segments,
        sealed,
    }
}

fn empty() -> ImageIndex {
    ImageIndex {
        artifact_type: Some(RELEASE_LOG.to_string()),
        ..ImageIndex::empty()
    }
}

/// The releases a log lists.
pub fn releases(index: &ImageIndex) -> Vec<Recorded> {
    index
        .manifests
        .iter()
        .map(|d| Recorded {
            descriptor: d.clone(),
            tags: tags_of(d),
        })
        .collect()
}

fn tags_of(entry: &Descriptor) -> BTreeSet<String> {
    entry
        .annotations
        .get(RELEASE_TAGS)
        .map(|t| {
            t.split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The release before `digest` in its stream, per the log: among releases first seen
/// earlier that carried a tag of one of `digest`'s streams, the newest, looking at the
/// narrowest stream first (`3.19.2` is in the streams `3.19.2`, `3.19` and `3`).
pub fn predecessor(index: &ImageIndex, digest: &Digest) -> Option<Digest> {
    let entry = index.manifests.iter().find(|d| &d.digest == digest)?;
    let first_seen = entry.annotations.get(RELEASE_FIRST_SEEN)?;
    let mut streams: Vec<&str> = Vec::new();
    let tags = tags_of(entry);
    for tag in &tags {
        streams.push(tag);
        streams.extend(
            tag.char_indices()
                .filter(|(_, c)| matches!(c, '-' | '.'))
                .map(|(i, _)| &tag[..i]),
        );
    }
    streams.sort_by_key(|s| std::cmp::Reverse(s.len()));
    streams.dedup();
    streams.into_iter().find_map(|stream| {
        newest(index.manifests.iter().filter(|d| {
            &d.digest != digest
                && d.annotations
                    .get(RELEASE_FIRST_SEEN)
                    .is_some_and(|s| s < first_seen)
                && tags_of(d).iter().any(|t| in_stream(t, stream))
        }))
        .map(|d| d.digest.clone())
    })
}

/// The release first seen last among `releases` (those without a date left out).
fn newest<'a>(releases: impl Iterator<Item = &'a Descriptor>) -> Option<&'a Descriptor> {
    releases
        .filter_map(|d| Some((d.annotations.get(RELEASE_FIRST_SEEN)?, d)))
        .max_by_key(|(seen, _)| *seen)
        .map(|(_, d)| d)
}

/// The releases of `index` no tag points at, given `current` (every tag of the
/// repository and the image it points at), not yet found pullable since (no
/// [`RELEASE_KEPT`]).
pub fn untagged(index: &ImageIndex, current: &[(Tag, Descriptor)]) -> Vec<Descriptor> {
    open(index, current).cloned().collect()
}

/// Per tag in `moved` (a tag and the image it now points at), the release that carried
/// it last before, unless found pullable with no tag already: the releases that may
/// have just lost their last tag.
pub fn left_by(index: &ImageIndex, moved: &[(Tag, Descriptor)]) -> Vec<Descriptor> {
    let mut found: Vec<Descriptor> = Vec::new();
    for (tag, _) in moved {
        let previous = newest(open(index, moved).filter(|d| tags_of(d).contains(tag.as_str())));
        if let Some(d) = previous.filter(|d| !found.iter().any(|f| f.digest == d.digest)) {
            found.push(d.clone());
        }
    }
    found
}

/// The releases of `index` that none of `seen` points at and that are not marked kept.
fn open<'a>(
    index: &'a ImageIndex,
    seen: &'a [(Tag, Descriptor)],
) -> impl Iterator<Item = &'a Descriptor> + 'a {
    index.manifests.iter().filter(move |d| {
        !seen.iter().any(|(_, image)| image.digest == d.digest)
            && !d.annotations.contains_key(RELEASE_KEPT)
    })
}

/// Keeps `release`, whose tags have all moved away, pullable by digest; whether it had
/// to be pushed again. zot serves a manifest only while its `index.json` names it, and
/// a tag's move drops the entry of the digest it left, though the release log still
/// references its bytes and zot still serves them as a blob. Such a release is pushed
/// again by digest, from those bytes once their digest is checked.
pub async fn keep_pullable(
    client: &Client,
    repository: &RepositoryName,
    release: &Descriptor,
) -> Result<bool, RegistryError> {
    let target = Target::Digest(release.digest.clone());
    if client.head_manifest(repository, &target).await?.is_some() {
        return Ok(false);
    }
    let bytes = client
        .get_blob(repository, &release.digest, Some(release.size))
        .await?;
    client
        .put_manifest(repository, &target, &release.media_type, bytes)
        .await?;
    Ok(true)
}

/// Marks `digest` in `index` as found pullable with no tag left at `now`.
pub fn mark_kept(index: &mut ImageIndex, digest: &Digest, now: &str) {
    if let Some(entry) = index.manifests.iter_mut().find(|d| &d.digest == digest) {
        entry.annotations.insert(RELEASE_KEPT.into(), now.into());
    }
}

/// Adds `seen` (a tag and the image it points at) to `index`; the pairs it did not
/// record yet (none when the log is unchanged).
pub fn merge(
    index: &mut ImageIndex,
    seen: &[(Tag, Descriptor)],
    now: &str,
) -> Vec<(Tag, Descriptor)> {
    let mut added = Vec::new();
    for (tag, image) in seen {
        let position = index
            .manifests
            .iter()
            .position(|d| d.digest == image.digest);
        let entry = match position {
            Some(i) => &mut index.manifests[i],
            None => {
                let mut entry =
                    Descriptor::new(image.media_type.clone(), image.digest.clone(), image.size);
                entry
                    .annotations
                    .insert(RELEASE_FIRST_SEEN.into(), now.into());
                index.manifests.push(entry);
                index.manifests.last_mut().expect("just pushed")
            }
        };
        let mut tags = tags_of(entry);
        if tags.insert(tag.to_string()) {
            let joined = tags.into_iter().collect::<Vec<_>>().join(",");
            entry.annotations.insert(RELEASE_TAGS.into(), joined);
            added.push((tag.clone(), image.clone()));
        }
    }
    added
}

/// Writes `log` as the log of `repository`, sealing the oldest releases into segments
/// while the head would hold more than [`HEAD_LIMIT`].
pub async fn write(
    client: &Client,
    repository: &RepositoryName,
    log: &ReleaseLog,
) -> Result<(), RegistryError> {
    write_bounded(client, repository, log, HEAD_LIMIT).await
}

/// [`write`] with the head bounded to `limit` releases.
pub async fn write_bounded(
    client: &Client,
    repository: &RepositoryName,
    log: &ReleaseLog,
    limit: usize,
) -> Result<(), RegistryError> {
    let (new_segments, head) = plan(log, limit.max(1));
    for segment in &new_segments {
        let bytes = serde_json::to_vec(segment).expect("an index serializes");
        let digest = crate::digest::sha256(&bytes);
        client
            .put_manifest(repository, &Target::Digest(digest), OCI_INDEX, bytes.into())
            .await?;
    }
    let bytes = serde_json::to_vec(&head).expect("an index serializes");
    client
        .put_manifest(repository, &target(), OCI_INDEX, bytes.into())
        .await
        .map(|_| ())
}

/// The segments to seal and the head to tag: the head keeps the releases no segment
/// holds as they are now, the newest `limit` of them; older ones go into new segments
/// of `limit` each.
fn plan(log: &ReleaseLog, limit: usize) -> (Vec<ImageIndex>, ImageIndex) {
    let mut open: Vec<Descriptor> = log
        .index
        .manifests
        .iter()
        .filter(|d| log.sealed.get(&d.digest) != Some(*d))
        .cloned()
        .collect();
    let mut segments = log.segments.clone();
    let mut sealed = Vec::new();
    while open.len() > limit {
        let chunk: Vec<Descriptor> = open.drain(..limit).collect();
        let index = ImageIndex {
            manifests: chunk,
            ..empty()
        };
        let bytes = serde_json::to_vec(&index).expect("an index serializes");
        let mut descriptor =
            Descriptor::new(OCI_INDEX, crate::digest::sha256(&bytes), bytes.len() as u64);
        descriptor.artifact_type = Some(RELEASE_LOG.to_string());
        descriptor
            .annotations
            .insert(RELEASE_SEGMENT.into(), index.manifests.len().to_string());
        segments.push(descriptor);
        sealed.push(index);
    }
    let head = ImageIndex {
        manifests: segments.into_iter().chain(open).collect(),
        ..log.index.clone()
    };
    (sealed, head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str) -> Descriptor {
        Descriptor::new(
            crate::media_types::OCI_INDEX,
            crate::digest::sha256(name.as_bytes()),
            10,
        )
    }

    fn tag(text: &str) -> Tag {
        text.parse().unwrap()
    }

    #[test]
    fn merging_adds_releases_and_tags_once() {
        let mut index = empty();
        let added = merge(
            &mut index,
            &[(tag("3.19"), image("a")), (tag("3.19.1"), image("a"))],
            "t1",
        );
        assert_eq!(added.len(), 2);
        assert!(merge(&mut index, &[(tag("3.19"), image("a"))], "t2").is_empty());
        assert_eq!(
            merge(&mut index, &[(tag("3.19"), image("b"))], "t3"),
            [(tag("3.19"), image("b"))]
        );
        let releases = releases(&index);
        assert_eq!(releases.len(), 2);
        assert_eq!(
            releases[0].tags,
            BTreeSet::from(["3.19".to_string(), "3.19.1".to_string()])
        );
        assert_eq!(releases[0].descriptor.annotations[RELEASE_FIRST_SEEN], "t1");
        assert_eq!(releases[1].tags, BTreeSet::from(["3.19".to_string()]));
    }

    #[test]
    fn the_predecessor_is_the_newest_earlier_release_of_the_narrowest_stream() {
        let mut index = empty();
        merge(&mut index, &[(tag("3.18.4"), image("a"))], "t1");
        merge(&mut index, &[(tag("3.19.0"), image("b"))], "t2");
        merge(&mut index, &[(tag("3.19.1"), image("c"))], "t3");
        merge(&mut index, &[(tag("3.20.0"), image("d"))], "t4");
        merge(&mut index, &[(tag("12"), image("e"))], "t4");
        merge(&mut index, &[(tag("12"), image("f"))], "t5");
        let digest = |n: &str| image(n).digest;
        // 3.19.1 follows 3.19.0, not the later-recorded 3.20.0 nor 3.18.4.
        assert_eq!(predecessor(&index, &digest("c")), Some(digest("b")));
        // 3.20.0 is the first of 3.20: the stream 3 gives 3.19.1.
        assert_eq!(predecessor(&index, &digest("d")), Some(digest("c")));
        // A floating tag that moved: the release it left.
        assert_eq!(predecessor(&index, &digest("f")), Some(digest("e")));
        assert_eq!(predecessor(&index, &digest("a")), None);
        assert_eq!(predecessor(&index, &digest("unknown")), None);
    }

    #[test]
    fn the_releases_to_keep_pullable_are_those_a_tag_just_left_or_none_points_at() {
        let mut index = empty();
        merge(
            &mut index,
            &[(tag("12"), image("a")), (tag("bookworm"), image("a"))],
            "t1",
        );
        merge(&mut index, &[(tag("12"), image("b"))], "t2");
        merge(&mut index, &[(tag("3.19"), image("c"))], "t3");
        let digests =
            |found: Vec<Descriptor>| found.into_iter().map(|d| d.digest).collect::<Vec<_>>();
        let digest = |n: &str| image(n).digest;
        // A job that saw 12 move to c: the release 12 left last (b), not the older a.
        let job = [(tag("12"), image("c"))];
        assert_eq!(digests(left_by(&index, &job)), [digest("b")]);
        // A walk that saw every tag: each release no tag points at.
        let walk = [
            (tag("12"), image("c")),
            (tag("bookworm"), image("c")),
            (tag("3.19"), image("c")),
        ];
        assert_eq!(digests(untagged(&index, &walk)), [digest("a"), digest("b")]);
        // Once found pullable with no tag, a release is not checked again.
        mark_kept(&mut index, &digest("b"), "t4");
        assert_eq!(digests(untagged(&index, &walk)), [digest("a")]);
        assert_eq!(digests(left_by(&index, &job)), [digest("a")]);
        // A tag that points at the same release as before leaves nothing.
        assert!(left_by(&index, &[(tag("3.19"), image("c"))]).is_empty());
    }

    #[test]
    fn a_long_log_is_sealed_into_segments_and_reads_back_whole() {
        let mut log = ReleaseLog::empty();
        for (i, name) in ["a", "b", "c", "d", "e", "f", "g"].iter().enumerate() {
            merge(
                &mut log.index,
                &[(tag(&format!("1.{i}")), image(name))],
                &format!("t{i}"),
            );
        }
        let (sealed, head) = plan(&log, 3);
        assert_eq!(sealed.len(), 2);
        assert!(sealed.iter().all(|s| s.manifests.len() == 3));
        let segment_refs: Vec<Descriptor> = head
            .manifests
            .iter()
            .filter(|d| d.annotations.contains_key(RELEASE_SEGMENT))
            .cloned()
            .collect();
        assert_eq!(segment_refs.len(), 2);
        assert_eq!(
            head.manifests.len(),
            3,
            "two segments and the newest release"
        );
        let read_back = |head: &ImageIndex, sealed: &[ImageIndex]| {
            let (segments, releases): (Vec<_>, Vec<_>) = head
                .manifests
                .iter()
                .cloned()
                .partition(|d| d.annotations.contains_key(RELEASE_SEGMENT));
            let parts = sealed.iter().map(|s| s.manifests.clone()).collect();
            assemble(head.clone(), segments, parts, releases)
        };
        let mut again = read_back(&head, &sealed);
        assert_eq!(again.index.manifests, log.index.manifests);

        // A sealed release gains a tag: its copy goes to the head and wins.
        merge(&mut again.index, &[(tag("latest"), image("a"))], "t9");
        let (more, head) = plan(&again, 3);
        assert!(more.is_empty());
        assert_eq!(head.manifests.len(), 4);
        let third = read_back(&head, &sealed);
        assert_eq!(third.index.manifests.len(), 7);
        assert!(releases(&third.index)[0].tags.contains("latest"));
        assert_eq!(third.index.manifests[0].digest, image("a").digest);
    }
}
