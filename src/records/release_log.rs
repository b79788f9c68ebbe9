//! The release log: per repository, an OCI index tagged `refcat-releases` that lists
//! every image the worker saw under a tag, with the tags it carried and when it was
//! first seen. A tag can move; the log keeps the release it left, so the history view
//! still shows it and the registry's garbage collector keeps it (an index references
//! it).
//!
//! The worker signs the log's head with its key, like every catalog document: a log
//! whose signature does not verify is not read, so no pusher can add a release to the
//! history or make the worker act on one. The read model only reads it; the worker
//! writes it, through a [`LogEdit`] that starts empty or from a log verified with its
//! key.
//!
//! The tagged head is rewritten on every change, so it is kept small: past
//! [`HEAD_LIMIT`] releases, the oldest are sealed into an index of their own, pushed by
//! digest and listed in the head as a segment (the head's signature covers it by its
//! digest). A sealed release that changes later (a new tag, found kept) is copied back
//! into the head, whose copy wins.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use time::OffsetDateTime;

use crate::artifact::annotations::{
    RELEASE_FIRST_SEEN, RELEASE_GONE, RELEASE_KEPT, RELEASE_REPOSITORY, RELEASE_SEGMENT,
    RELEASE_SUPERSEDED, RELEASE_TAGS,
};
use crate::artifact::parse_time;
use crate::digest::Digest;
use crate::media_types::{OCI_INDEX, RELEASE_LOG};
use crate::oci::{Descriptor, ImageIndex};
use crate::reference::{in_stream, RepositoryName, Tag, RELEASE_LOG_TAG};
use crate::registry::{Client, RegistryError};
use crate::trust::{Shown, Trust, Verified};

/// One release in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The release's manifest or index.
    pub descriptor: Descriptor,
    /// Every tag seen on it.
    pub tags: BTreeSet<String>,
}

/// The tag the log's head is kept under.
pub fn tag() -> Tag {
    RELEASE_LOG_TAG
        .parse()
        .expect("the release log tag is valid")
}

/// Releases the tagged head holds before the oldest are sealed into a segment.
pub const HEAD_LIMIT: usize = 500;

/// A repository's release log as read: every release, oldest segment first. Not
/// `Clone`: a log is changed only through a [`LogEdit`], which starts empty or from a
/// log verified with the worker's key, never from one shown unchecked.
#[derive(Debug)]
pub struct ReleaseLog {
    /// Every release, the sealed segments' first, then the head's.
    index: ImageIndex,
    /// The sealed segments, oldest first.
    segments: Vec<Descriptor>,
    /// The releases as their segments hold them, by digest, to tell what changed.
    sealed: HashMap<Digest, Descriptor>,
    /// A log this one replaced because it did not verify, kept referenced.
    superseded: Option<Descriptor>,
}

/// The log of `repository` as `trust` lets it be read: `None` when there is none, or
/// when its signature does not verify (a log nobody signed could say anything).
pub async fn read(
    client: &Client,
    repository: &RepositoryName,
    trust: &Trust,
) -> Result<Option<Shown<ReleaseLog>>, RegistryError> {
    let read = trust
        .tagged_index(client, repository, &tag(), RELEASE_LOG, segments_of)
        .await?;
    let Some(parts) = read else {
        return Ok(None);
    };
    // A signed log copied from another repository is that repository's.
    let names = parts.get().0.annotations.get(RELEASE_REPOSITORY);
    if names.map(String::as_str) != Some(repository.as_str()) {
        tracing::warn!(%repository, names = ?names, "the release log names another repository; not used");
        return Ok(None);
    }
    Ok(Some(parts.map(ReleaseLog::assemble)))
}

/// The digests of the sealed segments a head lists.
fn segments_of(head: &ImageIndex) -> Vec<Digest> {
    head.manifests
        .iter()
        .filter(|d| d.annotations.contains_key(RELEASE_SEGMENT))
        .map(|d| d.digest.clone())
        .collect()
}

fn empty() -> ImageIndex {
    ImageIndex {
        artifact_type: Some(RELEASE_LOG.to_string()),
        ..ImageIndex::empty()
    }
}

/// When a release was first seen; an entry without a readable date sorts first.
fn first_seen(entry: &Descriptor) -> Option<OffsetDateTime> {
    entry
        .annotations
        .get(RELEASE_FIRST_SEEN)
        .and_then(|t| parse_time(t))
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

impl ReleaseLog {
    fn empty() -> Self {
        ReleaseLog {
            index: empty(),
            segments: Vec::new(),
            sealed: HashMap::new(),
            superseded: None,
        }
    }

    /// The log from its head and the segments it names, in the head's order: later
    /// copies of a release (a newer segment, the head) replace earlier ones in place.
    fn assemble((head, sealed_parts): (ImageIndex, Vec<ImageIndex>)) -> ReleaseLog {
        let (segments, head_releases): (Vec<Descriptor>, Vec<Descriptor>) = head
            .manifests
            .iter()
            .cloned()
            .partition(|d| d.annotations.contains_key(RELEASE_SEGMENT));
        let (superseded, head_releases): (Vec<Descriptor>, Vec<Descriptor>) = head_releases
            .into_iter()
            .partition(|d| d.annotations.contains_key(RELEASE_SUPERSEDED));
        let mut sealed = HashMap::new();
        let mut all: Vec<Descriptor> = Vec::new();
        let mut position: HashMap<Digest, usize> = HashMap::new();
        let mut place = |d: Descriptor, all: &mut Vec<Descriptor>| match position.get(&d.digest) {
            Some(&i) => all[i] = d,
            None => {
                position.insert(d.digest.clone(), all.len());
                all.push(d);
            }
        };
        for part in sealed_parts {
            for release in part.manifests {
                sealed.insert(release.digest.clone(), release.clone());
                place(release, &mut all);
            }
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
            superseded: superseded.into_iter().next(),
        }
    }

    /// Every release, as an index.
    pub fn index(&self) -> &ImageIndex {
        &self.index
    }

    /// The releases the log lists.
    pub fn releases(&self) -> Vec<Recorded> {
        self.index
            .manifests
            .iter()
            .map(|d| Recorded {
                descriptor: d.clone(),
                tags: tags_of(d),
            })
            .collect()
    }

    /// The release before `digest` in its stream, per the log: among releases first
    /// seen earlier that carried a tag of one of `digest`'s streams, the newest, looking
    /// at the narrowest stream first (`3.19.2` is in the streams `3.19.2`, `3.19` and
    /// `3`).
    pub fn predecessor(&self, digest: &Digest) -> Option<Digest> {
        let manifests = &self.index.manifests;
        let entry = manifests.iter().find(|d| &d.digest == digest)?;
        let seen = first_seen(entry)?;
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
            newest(manifests.iter().filter(|d| {
                &d.digest != digest
                    && first_seen(d).is_some_and(|s| s < seen)
                    && tags_of(d).iter().any(|t| in_stream(t, stream))
            }))
            .map(|d| d.digest.clone())
        })
    }

    /// The releases no tag points at, given `current` (every tag of the repository and
    /// the image it points at), not yet found pullable since (no [`RELEASE_KEPT`]) nor
    /// gone ([`RELEASE_GONE`]).
    pub fn untagged(&self, current: &[(Tag, Descriptor)]) -> Vec<Descriptor> {
        open(&self.index, current).cloned().collect()
    }

    /// Per tag in `moved` (a tag and the image it now points at), the release that
    /// carried it last before, unless found pullable with no tag already: the releases
    /// that may have just lost their last tag.
    pub fn left_by(&self, moved: &[(Tag, Descriptor)]) -> Vec<Descriptor> {
        let mut found: Vec<Descriptor> = Vec::new();
        for (tag, _) in moved {
            let previous =
                newest(open(&self.index, moved).filter(|d| tags_of(d).contains(tag.as_str())));
            if let Some(d) = previous.filter(|d| !found.iter().any(|f| f.digest == d.digest)) {
                found.push(d.clone());
            }
        }
        found
    }
}

/// The release first seen last among `releases` (those without a date left out).
fn newest<'a>(releases: impl Iterator<Item = &'a Descriptor>) -> Option<&'a Descriptor> {
    releases
        .filter_map(|d| Some((first_seen(d)?, d)))
        .max_by_key(|(seen, _)| *seen)
        .map(|(_, d)| d)
}

/// The releases of `index` that none of `seen` points at and that are not marked kept.
fn open<'a>(
    index: &'a ImageIndex,
    seen: &'a [(Tag, Descriptor)],
) -> impl Iterator<Item = &'a Descriptor> + 'a {
    index.manifests.iter().filter(move |d| {
        !seen.iter().any(|(_, image)| image.digest == d.digest)
            && !d.annotations.contains_key(RELEASE_KEPT)
            && !d.annotations.contains_key(RELEASE_GONE)
    })
}

/// A release log being changed by the worker: it starts empty, or from the log read
/// verified with the worker's own key.
#[derive(Debug)]
pub struct LogEdit {
    log: ReleaseLog,
}

/// The head of a log ready to be signed and tagged, and the new segments it names, to
/// be pushed by digest first. Only [`LogEdit::seal`] makes one.
#[derive(Debug)]
pub struct SealedLog {
    segments: Vec<(Digest, Bytes)>,
    head: Bytes,
}

impl SealedLog {
    /// New segments, by digest, to push before the head.
    pub fn segments(&self) -> &[(Digest, Bytes)] {
        &self.segments
    }

    /// The head index's bytes.
    pub fn head(&self) -> &Bytes {
        &self.head
    }
}

impl LogEdit {
    /// A new, empty log.
    pub fn new() -> Self {
        LogEdit {
            log: ReleaseLog::empty(),
        }
    }

    /// Goes on from `log`, which verified with the worker's key; with the proof of the
    /// head it came from, which the edited log replaces.
    pub fn resume(log: Verified<ReleaseLog>) -> (Self, Verified<()>) {
        let (log, proof) = log.into_parts();
        (LogEdit { log }, proof)
    }

    /// The log as edited so far.
    pub fn log(&self) -> &ReleaseLog {
        &self.log
    }

    /// Adds `seen` (a tag and the image it points at, as the registry says now) to the
    /// log; the pairs it did not record yet (none when the log is unchanged).
    pub fn merge(&mut self, seen: &[(Tag, Descriptor)], now: &str) -> Vec<(Tag, Descriptor)> {
        let index = &mut self.log.index;
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

    /// Marks `digest` as found pullable with no tag left at `now`.
    pub fn mark_kept(&mut self, digest: &Digest, now: &str) {
        let manifests = &mut self.log.index.manifests;
        if let Some(entry) = manifests.iter_mut().find(|d| &d.digest == digest) {
            entry.annotations.insert(RELEASE_KEPT.into(), now.into());
        }
    }

    /// Marks `digest` as gone at `now`: no tag points at it and the registry no longer
    /// serves it (someone deleted it, perhaps on purpose); it is not the worker's to
    /// bring back, and is not checked again.
    pub fn mark_gone(&mut self, digest: &Digest, now: &str) {
        let manifests = &mut self.log.index.manifests;
        if let Some(entry) = manifests.iter_mut().find(|d| &d.digest == digest) {
            entry.annotations.insert(RELEASE_GONE.into(), now.into());
        }
    }

    /// Keeps `old`, a log found under the tag that did not verify, referenced from this
    /// one (the first such one only): what it lists is not lost to garbage collection,
    /// and none of it is believed.
    pub fn supersede(&mut self, old: &Descriptor) {
        if self.log.superseded.is_none() {
            let mut entry = Descriptor::new(old.media_type.clone(), old.digest.clone(), old.size);
            entry
                .annotations
                .insert(RELEASE_SUPERSEDED.into(), "true".into());
            self.log.superseded = Some(entry);
        }
    }

    /// The head of the log of `repository` to sign and tag, sealing the oldest releases
    /// into new segments while the head would hold more than `limit`: the head keeps the
    /// releases no segment holds as they are now, the newest `limit` of them.
    pub fn seal(&self, repository: &RepositoryName, limit: usize) -> SealedLog {
        let limit = limit.max(1);
        let log = &self.log;
        let mut open: Vec<Descriptor> = log
            .index
            .manifests
            .iter()
            .filter(|d| log.sealed.get(&d.digest) != Some(*d))
            .cloned()
            .collect();
        let mut segments: Vec<Descriptor> = log.segments.clone();
        let mut sealed = Vec::new();
        while open.len() > limit {
            let chunk: Vec<Descriptor> = open.drain(..limit).collect();
            let index = ImageIndex {
                manifests: chunk,
                ..empty()
            };
            let bytes = Bytes::from(serde_json::to_vec(&index).expect("an index serializes"));
            let digest = crate::digest::sha256(&bytes);
            let mut descriptor = Descriptor::new(OCI_INDEX, digest.clone(), bytes.len() as u64);
            descriptor.artifact_type = Some(RELEASE_LOG.to_string());
            descriptor
                .annotations
                .insert(RELEASE_SEGMENT.into(), index.manifests.len().to_string());
            segments.push(descriptor);
            sealed.push((digest, bytes));
        }
        let mut head = ImageIndex {
            manifests: segments
                .into_iter()
                .chain(log.superseded.clone())
                .chain(open)
                .collect(),
            ..log.index.clone()
        };
        head.annotations
            .insert(RELEASE_REPOSITORY.into(), repository.to_string());
        SealedLog {
            segments: sealed,
            head: Bytes::from(serde_json::to_vec(&head).expect("an index serializes")),
        }
    }
}

impl Default for LogEdit {
    fn default() -> Self {
        LogEdit::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str) -> Descriptor {
        Descriptor::new(OCI_INDEX, crate::digest::sha256(name.as_bytes()), 10)
    }

    fn tag(text: &str) -> Tag {
        text.parse().unwrap()
    }

    fn repo() -> RepositoryName {
        "team/app".parse().unwrap()
    }

    /// A time `n` seconds into 2026-11-01, as the worker writes them.
    fn at(n: i64) -> String {
        let start = parse_time("2026-11-01T00:00:00Z").unwrap();
        crate::artifact::format_time(start + time::Duration::seconds(n))
    }

    #[test]
    fn merging_adds_releases_and_tags_once() {
        let mut edit = LogEdit::new();
        let added = edit.merge(
            &[(tag("3.19"), image("a")), (tag("3.19.1"), image("a"))],
            &at(1),
        );
        assert_eq!(added.len(), 2);
        assert!(edit.merge(&[(tag("3.19"), image("a"))], &at(2)).is_empty());
        assert_eq!(
            edit.merge(&[(tag("3.19"), image("b"))], &at(3)),
            [(tag("3.19"), image("b"))]
        );
        let releases = edit.log().releases();
        assert_eq!(releases.len(), 2);
        assert_eq!(
            releases[0].tags,
            BTreeSet::from(["3.19".to_string(), "3.19.1".to_string()])
        );
        assert_eq!(
            releases[0].descriptor.annotations[RELEASE_FIRST_SEEN],
            at(1)
        );
        assert_eq!(releases[1].tags, BTreeSet::from(["3.19".to_string()]));
    }

    #[test]
    fn the_predecessor_is_the_newest_earlier_release_of_the_narrowest_stream() {
        let mut edit = LogEdit::new();
        edit.merge(&[(tag("3.18.4"), image("a"))], &at(1));
        edit.merge(&[(tag("3.19.0"), image("b"))], &at(2));
        edit.merge(&[(tag("3.19.1"), image("c"))], &at(3));
        edit.merge(&[(tag("3.20.0"), image("d"))], &at(4));
        edit.merge(&[(tag("12"), image("e"))], &at(4));
        edit.merge(&[(tag("12"), image("f"))], &at(5));
        let log = edit.log();
        let digest = |n: &str| image(n).digest;
        // 3.19.1 follows 3.19.0, not the later-recorded 3.20.0 nor 3.18.4.
        assert_eq!(log.predecessor(&digest("c")), Some(digest("b")));
        // 3.20.0 is the first of 3.20: the stream 3 gives 3.19.1.
        assert_eq!(log.predecessor(&digest("d")), Some(digest("c")));
        // A floating tag that moved: the release it left.
        assert_eq!(log.predecessor(&digest("f")), Some(digest("e")));
        assert_eq!(log.predecessor(&digest("a")), None);
        assert_eq!(log.predecessor(&digest("unknown")), None);
    }

    #[test]
    fn first_seen_compares_as_time_whatever_its_precision() {
        let mut edit = LogEdit::new();
        // An older worker wrote whole seconds; this one writes nanoseconds.
        edit.merge(&[(tag("12"), image("a"))], "2026-11-01T00:00:01Z");
        edit.merge(&[(tag("12"), image("b"))], "2026-11-01T00:00:01.5Z");
        let log = edit.log();
        assert_eq!(log.predecessor(&image("b").digest), Some(image("a").digest));
        assert_eq!(log.predecessor(&image("a").digest), None);
    }

    #[test]
    fn the_releases_to_keep_pullable_are_those_a_tag_just_left_or_none_points_at() {
        let mut edit = LogEdit::new();
        edit.merge(
            &[(tag("12"), image("a")), (tag("bookworm"), image("a"))],
            &at(1),
        );
        edit.merge(&[(tag("12"), image("b"))], &at(2));
        edit.merge(&[(tag("3.19"), image("c"))], &at(3));
        let digests =
            |found: Vec<Descriptor>| found.into_iter().map(|d| d.digest).collect::<Vec<_>>();
        let digest = |n: &str| image(n).digest;
        // A job that saw 12 move to c: the release 12 left last (b), not the older a.
        let job = [(tag("12"), image("c"))];
        assert_eq!(digests(edit.log().left_by(&job)), [digest("b")]);
        // A walk that saw every tag: each release no tag points at.
        let walk = [
            (tag("12"), image("c")),
            (tag("bookworm"), image("c")),
            (tag("3.19"), image("c")),
        ];
        assert_eq!(
            digests(edit.log().untagged(&walk)),
            [digest("a"), digest("b")]
        );
        // Once found pullable with no tag, or gone, a release is not checked again.
        edit.mark_kept(&digest("b"), &at(4));
        assert_eq!(digests(edit.log().untagged(&walk)), [digest("a")]);
        assert_eq!(digests(edit.log().left_by(&job)), [digest("a")]);
        edit.mark_gone(&digest("a"), &at(5));
        assert!(edit.log().untagged(&walk).is_empty());
        assert!(edit.log().left_by(&job).is_empty());
        // A tag that points at the same release as before leaves nothing.
        assert!(edit.log().left_by(&[(tag("3.19"), image("c"))]).is_empty());
    }

    /// What a reader assembles from `sealed`'s head and segments.
    fn read_back(sealed: &SealedLog, earlier: &[(Digest, Bytes)]) -> ReleaseLog {
        let head: ImageIndex = serde_json::from_slice(sealed.head()).unwrap();
        let parts = segments_of(&head)
            .iter()
            .map(|d| {
                let (_, bytes) = earlier
                    .iter()
                    .chain(sealed.segments())
                    .find(|(digest, _)| digest == d)
                    .unwrap();
                serde_json::from_slice(bytes).unwrap()
            })
            .collect();
        ReleaseLog::assemble((head, parts))
    }

    #[test]
    fn a_long_log_is_sealed_into_segments_and_reads_back_whole() {
        let mut edit = LogEdit::new();
        for (i, name) in ["a", "b", "c", "d", "e", "f", "g"].iter().enumerate() {
            edit.merge(&[(tag(&format!("1.{i}")), image(name))], &at(i as i64));
        }
        let sealed = edit.seal(&repo(), 3);
        assert_eq!(sealed.segments().len(), 2);
        let head: ImageIndex = serde_json::from_slice(sealed.head()).unwrap();
        assert_eq!(segments_of(&head).len(), 2);
        assert_eq!(
            head.manifests.len(),
            3,
            "two segments and the newest release"
        );
        let again = read_back(&sealed, &[]);
        assert_eq!(again.index.manifests, edit.log().index.manifests);

        // A sealed release gains a tag: its copy goes to the head and wins.
        let first_segments = sealed.segments().to_vec();
        let mut edit = LogEdit { log: again };
        edit.merge(&[(tag("latest"), image("a"))], &at(9));
        let resealed = edit.seal(&repo(), 3);
        assert!(resealed.segments().is_empty());
        let head: ImageIndex = serde_json::from_slice(resealed.head()).unwrap();
        assert_eq!(head.manifests.len(), 4);
        let third = read_back(&resealed, &first_segments);
        assert_eq!(third.index.manifests.len(), 7);
        assert!(third.releases()[0].tags.contains("latest"));
        assert_eq!(third.index.manifests[0].digest, image("a").digest);
    }
}
