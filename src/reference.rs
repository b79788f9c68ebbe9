//! Image references: `registry/repository[:tag][@digest]`, parsed once at the edge.
//!
//! The grammar is the distribution spec's. Anything that does not match is refused
//! before a single request is made, which is what keeps hostile names (`../x`,
//! `a//b`, upper case, over-long paths) out of URLs and log lines.

use std::fmt;
use std::str::FromStr;

use crate::digest::{self, Digest, DigestError};
use crate::text::shorten;

/// The registry assumed when a reference names none, as docker does.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The distribution spec's limit for a repository path.
pub const MAX_REPOSITORY_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;
const MAX_REGISTRY_LEN: usize = 253 + 6;

/// Why a reference, repository name or tag was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// Empty input.
    #[error("empty reference: expected registry/repository[:tag][@digest]")]
    Empty,
    /// The repository path breaks the distribution spec's grammar.
    #[error("invalid repository name {name:?}: {reason}")]
    Repository {
        /// The rejected name, shortened if long.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The tag breaks the grammar.
    #[error("invalid tag {tag:?}: tags are 1-128 characters of [A-Za-z0-9_.-] and do not start with '.' or '-'")]
    Tag {
        /// The rejected tag, shortened if long.
        tag: String,
    },
    /// The registry host is not a host[:port].
    #[error("invalid registry host {0:?}: expected host[:port]")]
    Registry(String),
    /// The digest part is wrong.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

/// Whether `tag` belongs to `stream`: the stream's tag itself, `S-…` or `S.…`.
pub fn in_stream(tag: &str, stream: &str) -> bool {
    tag == stream
        || (tag.len() > stream.len() + 1
            && tag.starts_with(stream)
            && matches!(tag.as_bytes()[stream.len()], b'-' | b'.'))
}

/// A repository path such as `library/debian`, valid by construction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// The path as it appears in `/v2/<name>/…` URLs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RepositoryName {
    type Err = ReferenceError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| ReferenceError::Repository {
            name: shorten(name),
            reason,
        };
        if name.is_empty() {
            return Err(refuse("it is empty"));
        }
        if name.len() > MAX_REPOSITORY_LEN {
            return Err(refuse("it is longer than 255 characters"));
        }
        for component in name.split('/') {
            if component.is_empty() {
                return Err(refuse("it has an empty path component"));
            }
            if !is_path_component(component) {
                return Err(refuse(
                    "each path component must be lower-case letters and digits, joined by '.', '_', '__' or '-'",
                ));
            }
        }
        Ok(RepositoryName(name.to_string()))
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`, written out to avoid a regex dependency.
fn is_path_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &s[sep_start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok || i == bytes.len() {
            return false;
        }
    }
}

/// The tag of a repository's release log (see `records::releases`).
pub const RELEASE_LOG_TAG: &str = "refcat-releases";

/// The tag of the stored catalog aggregate, in the repository configured for it.
pub const AGGREGATE_TAG: &str = "refcat-aggregate";

/// The tag of the repositories the worker found, stored beside the aggregate.
pub const REPOSITORIES_TAG: &str = "refcat-repositories";

/// The tag of the subject index (where complete sets are), stored beside the aggregate.
pub const SUBJECTS_TAG: &str = "refcat-subjects";

/// The prefix of the tags that hold repository summaries, beside the aggregate.
pub const SUMMARY_TAG_PREFIX: &str = "refcat-summary-";

/// The tag of `repository`'s summary: a hash of its name, since a name may be longer
/// than a tag and hold characters a tag may not.
pub fn summary_tag(repository: &RepositoryName) -> Tag {
    let hash = crate::digest::sha256(repository.as_str().as_bytes());
    Tag(format!("{SUMMARY_TAG_PREFIX}{}", &hash.digest()[..32]))
}

/// A tag, valid by construction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// The tag text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this tag holds supporting content rather than an image: a tag-schema
    /// referrers index (`sha256-<hex>`) or a cosign signature, attestation or SBOM
    /// (`sha256-<hex>.sig`, `.att`, `.sbom`), or refcat's release log, aggregate,
    /// repository list, subject index or a repository summary.
    pub fn is_supporting(&self) -> bool {
        if [
            RELEASE_LOG_TAG,
            AGGREGATE_TAG,
            REPOSITORIES_TAG,
            SUBJECTS_TAG,
        ]
        .contains(&self.0.as_str())
            || self.0.starts_with(SUMMARY_TAG_PREFIX)
        {
            return true;
        }
        let Some((algorithm, rest)) = self.0.split_once('-') else {
            return false;
        };
        let hex = ["", ".sig", ".att", ".sbom"]
            .iter()
            .find_map(|suffix| rest.strip_suffix(suffix).filter(|_| !suffix.is_empty()))
            .unwrap_or(rest);
        let expected = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => return false,
        };
        hex.len() == expected && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Tag {
    type Err = ReferenceError;

    fn from_str(tag: &str) -> Result<Self, Self::Err> {
        let first_ok = tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        let rest_ok = tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if first_ok && rest_ok && tag.len() <= MAX_TAG_LEN {
            Ok(Tag(tag.to_string()))
        } else {
            Err(ReferenceError::Tag { tag: shorten(tag) })
        }
    }
}

/// What a reference points at: a tag, a digest, or a tag pinned to a digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `repo:tag`
    Tag(Tag),
    /// `repo@digest`
    Digest(Digest),
    /// `repo:tag@digest`: the digest wins, the tag is informational.
    Pinned(Tag, Digest),
}

impl Target {
    /// The reference segment used in `/v2/<name>/manifests/<reference>`.
    pub fn manifest_reference(&self) -> String {
        match self {
            Target::Tag(tag) => tag.to_string(),
            Target::Digest(d) | Target::Pinned(_, d) => d.to_string(),
        }
    }

    /// The digest, when the reference names one.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Target::Tag(_) => None,
            Target::Digest(d) | Target::Pinned(_, d) => Some(d),
        }
    }
}

/// A full image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host and optional port, e.g. `127.0.0.1:5000`.
    pub registry: String,
    /// The repository path.
    pub repository: RepositoryName,
    /// The tag and/or digest.
    pub target: Target,
}

impl Reference {
    /// A reference to `digest` in the same repository.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            target: Target::Digest(digest),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        match &self.target {
            Target::Tag(t) => write!(f, ":{t}"),
            Target::Digest(d) => write!(f, "@{d}"),
            Target::Pinned(t, d) => write!(f, ":{t}@{d}"),
        }
    }
}

/// Validates a registry host[:port].
pub fn parse_registry(host: &str) -> Result<String, ReferenceError> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(']') || name.ends_with(']') => (name, Some(port)),
        _ => (host, None),
    };
    let name_ok = !name.is_empty()
        && host.len() <= MAX_REGISTRY_LEN
        && (name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
            || (name.starts_with('[') && name.ends_with(']')))
        && !name.starts_with('-')
        && !name.starts_with('.');
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if name_ok && port_ok {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(ReferenceError::Registry(shorten(host)))
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((rest, d)) => (rest, Some(digest::parse(d)?)),
            None => (input, None),
        };
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let split = last_slash + i;
                (
                    &name_and_tag[..split],
                    Some(name_and_tag[split + 1..].parse::<Tag>()?),
                )
            }
            None => (name_and_tag, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
            {
                (parse_registry(first)?, rest.to_string())
            }
            _ if !name.contains('/') => (DEFAULT_REGISTRY.to_string(), format!("library/{name}")),
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let repository = repository.parse()?;
        let target = match (tag, digest) {
            (Some(t), Some(d)) => Target::Pinned(t, d),
            (None, Some(d)) => Target::Digest(d),
            (Some(t), None) => Target::Tag(t),
            (None, None) => Target::Tag(Tag("latest".to_string())),
        };
        Ok(Reference {
            registry,
            repository,
            target,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_its_tag_and_the_tags_that_extend_it() {
        assert!(in_stream("3.19", "3.19"));
        assert!(in_stream("3.19.1", "3.19"));
        assert!(in_stream("3.19-r1", "3.19"));
        assert!(!in_stream("3.190", "3.19"));
        assert!(!in_stream("3.1", "3.19"));
    }

    #[test]
    fn supporting_tags_are_told_from_image_tags() {
        let hex = "a".repeat(64);
        for t in [
            format!("sha256-{hex}"),
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.att"),
        ] {
            assert!(t.parse::<Tag>().unwrap().is_supporting(), "{t}");
        }
        for t in [
            "latest",
            "sha256-abc",
            "3.19",
            &format!("sha256-{hex}.txt"),
            &format!("md5-{hex}"),
        ] {
            assert!(!t.parse::<Tag>().unwrap().is_supporting(), "{t}");
        }
    }

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn parses_the_usual_forms() {
        let r: Reference = "127.0.0.1:5000/team/app:1.2".parse().unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository.as_str(), "team/app");
        assert_eq!(r.target, Target::Tag("1.2".parse().unwrap()));

        let r: Reference = format!("localhost/app@{D}").parse().unwrap();
        assert_eq!(r.target.digest().unwrap().to_string(), D);
        assert_eq!(r.to_string(), format!("localhost/app@{D}"));

        let r: Reference = "debian".parse().unwrap();
        assert_eq!(r.to_string(), "docker.io/library/debian:latest");

        let r: Reference = format!("reg.example:443/a/b:t@{D}").parse().unwrap();
        assert!(matches!(r.target, Target::Pinned(..)));
    }

    #[test]
    fn refuses_hostile_names() {
        for bad in [
            "127.0.0.1:5000/../x",
            "127.0.0.1:5000/a//b",
            "127.0.0.1:5000/Upper",
            "127.0.0.1:5000/a/",
            "127.0.0.1:5000/-a",
            "127.0.0.1:5000/a..b",
            "127.0.0.1:5000/a%2fb",
            "127.0.0.1:5000/a b",
        ] {
            let err = bad.parse::<Reference>().unwrap_err();
            assert!(
                matches!(err, ReferenceError::Repository { .. }),
                "{bad}: {err}"
            );
        }
        let long = format!("127.0.0.1:5000/{}", "a".repeat(256));
        assert!(long
            .parse::<Reference>()
            .unwrap_err()
            .to_string()
            .contains("longer than 255"));
    }

    #[test]
    fn refuses_bad_tags_and_digests() {
        assert!(matches!(
            "r.io/a:-x".parse::<Reference>(),
            Err(ReferenceError::Tag { .. })
        ));
        assert!(matches!(
            format!("r.io/a:{}", "t".repeat(129)).parse::<Reference>(),
            Err(ReferenceError::Tag { .. })
        ));
        assert!(matches!(
            "r.io/a@sha256:zz".parse::<Reference>(),
            Err(ReferenceError::Digest(_))
        ));
        assert!(matches!(
            "".parse::<Reference>(),
            Err(ReferenceError::Empty)
        ));
    }

    #[test]
    fn separators_follow_the_grammar() {
        for good in ["a", "a.b", "a_b", "a__b", "a---b", "a/b/c", "0"] {
            assert!(good.parse::<RepositoryName>().is_ok(), "{good}");
        }
        for bad in ["a___b", "a._b", "_a", "a_", "a.", ".."] {
            assert!(bad.parse::<RepositoryName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn error_messages_stay_short() {
        let junk = "X".repeat(10_000);
        let msg = format!("r.io/{junk}")
            .parse::<Reference>()
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 300, "{}", msg.len());
    }
}
