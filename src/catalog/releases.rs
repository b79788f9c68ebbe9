//! The release log: per repository, an OCI index tagged `refcat-releases` that lists
//! every image the worker saw under a tag, with the tags it carried and when it was
//! first seen. A tag can move; the log keeps the release it left, so the history view
//! still shows it and the registry's garbage collector keeps it (an index references
//! it).

use std::collections::BTreeSet;

use crate::artifact::annotations::{RELEASE_FIRST_SEEN, RELEASE_TAGS};
use crate::artifact::media_types::RELEASE_LOG;
use crate::catalog::history::in_stream;
use crate::digest::Digest;
use crate::oci::{Descriptor, ImageIndex, Manifest};
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

/// The log of `repository`, empty when there is none.
pub async fn read(
    client: &Client,
    repository: &RepositoryName,
) -> Result<ImageIndex, RegistryError> {
    match client.get_manifest(repository, &target()).await {
        Ok(fetched) => match fetched.manifest {
            Manifest::Index(index) => Ok(index),
            Manifest::Image(_) => Ok(empty()),
        },
        Err(e) if e.is_not_found() => Ok(empty()),
        Err(e) => Err(e),
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
        index
            .manifests
            .iter()
            .filter(|d| &d.digest != digest)
            .filter_map(|d| Some((d.annotations.get(RELEASE_FIRST_SEEN)?, d)))
            .filter(|(seen, d)| {
                *seen < first_seen && tags_of(d).iter().any(|t| in_stream(t, stream))
            })
            .max_by_key(|(seen, _)| *seen)
            .map(|(_, d)| d.digest.clone())
    })
}

/// Adds `seen` (a tag and the image it points at) to `index`; whether it changed.
pub fn merge(index: &mut ImageIndex, seen: &[(Tag, Descriptor)], now: &str) -> bool {
    let mut changed = false;
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
                changed = true;
                index.manifests.last_mut().expect("just pushed")
            }
        };
        let mut tags = tags_of(entry);
        if tags.insert(tag.to_string()) {
            let joined = tags.into_iter().collect::<Vec<_>>().join(",");
            entry.annotations.insert(RELEASE_TAGS.into(), joined);
            changed = true;
        }
    }
    changed
}

/// Writes `index` as the log of `repository`.
pub async fn write(
    client: &Client,
    repository: &RepositoryName,
    index: &ImageIndex,
) -> Result<(), RegistryError> {
    let bytes = serde_json::to_vec(index).expect("an index serializes");
    client
        .put_manifest(
            repository,
            &target(),
            crate::artifact::media_types::OCI_INDEX,
            bytes.into(),
        )
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str) -> Descriptor {
        Descriptor::new(
            crate::artifact::media_types::OCI_INDEX,
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
        assert!(merge(
            &mut index,
            &[(tag("3.19"), image("a")), (tag("3.19.1"), image("a"))],
            "t1"
        ));
        assert!(!merge(&mut index, &[(tag("3.19"), image("a"))], "t2"));
        assert!(merge(&mut index, &[(tag("3.19"), image("b"))], "t3"));
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
}
