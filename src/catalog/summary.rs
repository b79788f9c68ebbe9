//! A repository's summary: every image tag with the digest it named, and per image what
//! the tags view, the directory and the aggregate need (platforms, `created`, labels,
//! refcat's newest results and their matches). The worker keeps one per repository,
//! signed, beside the aggregate (`refcat-summary-<hash of the name>`), and changes only
//! the images that changed; views then read one document where they would walk every
//! tag, and the walk skips images the summary calls complete.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{stream, StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};

use super::image::manifest_and_config;
use super::platforms::with_each_platform;
use super::stored::StoredDocument;
use super::CatalogError;
use crate::artifact::annotations::{CREATED, GRYPE_DB_BUILT};
use crate::artifact::{is_current, now_rfc3339, parse_time, Format};
use crate::digest::Digest;
use crate::media_types::REPOSITORY_SUMMARY;
use crate::reference::{summary_tag, Reference, RepositoryName, Tag, Target};
use crate::registry::Client;
use crate::scan::report::Severity;
use crate::trust::{Judged, Trust};

/// Images read at once when a summary is brought up to date.
const CONCURRENCY: usize = 8;

/// The labels a summary keeps of an image's config: what the directory shows.
const LABELS: [&str; 4] = ["title", "description", "source", "licenses"];

/// One repository's summary document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositorySummary {
    /// The repository it describes (a summary stored under another's tag is refused).
    pub repository: String,
    /// How many tags the repository listed (supporting tags not counted).
    pub listed: usize,
    /// Each image tag, with the digest of the manifest or index it named.
    pub tags: BTreeMap<String, String>,
    /// Each image those tags name, by digest.
    pub images: BTreeMap<String, SummaryImage>,
}

/// One image (a manifest or an index) in a summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryImage {
    /// The media type of its manifest or index.
    pub media_type: String,
    /// `org.opencontainers.image.{title,description,source,licenses}` of its first
    /// platform's config.
    pub labels: BTreeMap<String, String>,
    /// Its platforms.
    pub platforms: Vec<SummaryPlatform>,
    /// When refcat last checked its set against the registry (RFC 3339): a walk trusts
    /// the summary's word on it only for [`RECHECK_AFTER`] after that.
    #[serde(default)]
    pub checked: Option<String>,
}

/// How long a summary's word that an image is complete stands before a walk checks
/// the image's set in the registry again: a set deleted since (by a pusher, by garbage
/// collection) is found and made again within a day.
pub const RECHECK_AFTER: time::Duration = time::Duration::hours(24);

/// One platform manifest in a summary: what refcat's own, verified artifacts say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryPlatform {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: String,
    /// The config's `created`.
    pub created: Option<String>,
    /// Which of refcat's SBOMs it has.
    pub sboms: BTreeSet<String>,
    /// When the newest Grype result was made; `None` without one.
    pub scanned_at: Option<String>,
    /// The build time of the DB it matched against.
    pub db_built: Option<String>,
    /// Its matches (id and severity, one per matched package); `None` without a result.
    pub matches: Option<Vec<SummaryMatch>>,
}

/// One match, as the summary keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryMatch {
    /// The vulnerability id.
    pub id: String,
    /// grype's severity.
    pub severity: Severity,
    /// The matched package (empty in summaries written before it was kept: such an
    /// image is read again).
    #[serde(default)]
    pub package: String,
    /// When refcat first saw this id on this package of the platform manifest (its
    /// record's `firstSeen`); `None` when the record says nothing of it.
    #[serde(default)]
    pub first_seen: Option<String>,
}

impl SummaryPlatform {
    /// Whether refcat's set is complete here for a DB built at `db_built`: both SBOMs,
    /// and a Grype result matched with that DB or a newer one.
    pub fn complete(&self, db_built: &str) -> bool {
        [Format::SyftJson, Format::SpdxJson]
            .iter()
            .all(|f| self.sboms.contains(f.as_str()))
            && is_current(self.db_built.as_deref(), db_built)
    }

    /// Its matches per severity; `None` without a result.
    pub fn counts(&self) -> Option<BTreeMap<Severity, usize>> {
        let mut counts: BTreeMap<Severity, usize> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
        for m in self.matches.as_ref()? {
            *counts.entry(m.severity).or_default() += 1;
        }
        Some(counts)
    }
}

impl SummaryImage {
    /// The image `digest` in `repository` as `own`, the publisher's trust, shows it:
    /// only results that verify with its key count.
    pub async fn read(
        client: &Client,
        repository: &RepositoryName,
        digest: &Digest,
        own: &Trust,
    ) -> Result<SummaryImage, CatalogError> {
        let reference = Reference {
            registry: client.registry().to_string(),
            repository: repository.clone(),
            target: Target::Digest(digest.clone()),
        };
        let (top, read) = with_each_platform(client, &reference, |digest| async move {
            let formats = [Format::SyftJson, Format::SpdxJson];
            let ((_, config), judged, grype) = tokio::try_join!(
                manifest_and_config(client, repository, &digest),
                super::artifacts::newest(client, repository, &digest, &formats, own),
                super::vulnerabilities::scan(client, repository, &digest, own),
            )?;
            let sboms: BTreeSet<String> = formats
                .iter()
                .zip(judged)
                .filter(|(_, j)| j.as_ref().and_then(Judged::content).is_some())
                .map(|(f, _)| f.as_str().to_string())
                .collect();
            Ok::<_, CatalogError>((config, sboms, grype))
        })
        .await?;
        let mut labels = BTreeMap::new();
        let mut platforms = Vec::with_capacity(read.len());
        for (subject, (config, sboms, grype)) in read {
            if platforms.is_empty() {
                let all = config.config.labels.unwrap_or_default();
                labels = LABELS
                    .iter()
                    .filter_map(|key| {
                        let key = format!("org.opencontainers.image.{key}");
                        Some((key.clone(), all.get(&key)?.clone()))
                    })
                    .collect();
            }
            let content = grype.judged.as_ref().and_then(Judged::content);
            let annotation = |key: &str| {
                content
                    .and_then(|c| c.get().annotation(key))
                    .map(str::to_string)
            };
            platforms.push(SummaryPlatform {
                platform: subject.platform.to_string(),
                digest: subject.descriptor.digest.to_string(),
                created: config.created.clone(),
                sboms,
                scanned_at: annotation(CREATED),
                db_built: annotation(GRYPE_DB_BUILT),
                matches: grype.matches.and_then(|m| m.verified()).map(|m| {
                    m.get()
                        .iter()
                        .map(|m| SummaryMatch {
                            id: m.id.clone(),
                            severity: m.severity,
                            package: m.package.clone(),
                            first_seen: grype
                                .first_seen
                                .get(&(m.id.clone(), m.package.clone()))
                                .cloned(),
                        })
                        .collect()
                }),
            });
        }
        Ok(SummaryImage {
            media_type: top.media_type,
            labels,
            platforms,
            checked: None,
        })
    }

    /// Whether every platform is complete for a DB built at `db_built`, and the summary
    /// holds all it keeps of it (a summary written before matches kept their package
    /// lacks it: the image is read again).
    pub fn complete(&self, db_built: &str) -> bool {
        let whole = self
            .platforms
            .iter()
            .flat_map(|p| p.matches.iter().flatten())
            .all(|m| !m.package.is_empty());
        whole && !self.platforms.is_empty() && self.platforms.iter().all(|p| p.complete(db_built))
    }

    /// Whether its set was checked in the registry within [`RECHECK_AFTER`].
    pub fn recently_checked(&self) -> bool {
        let now = time::OffsetDateTime::now_utc();
        self.checked
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|at| at <= now && now - at < RECHECK_AFTER)
    }
}

impl RepositorySummary {
    /// The summary of `repository` with `tags` (each image tag and its digest, out of
    /// `listed` tags): images `previous` holds that are complete for `db_built` are kept
    /// from it, the others read again with `own`. An image that cannot be read (gone
    /// since it was listed, not readable) is left out, with its tags.
    pub async fn update(
        client: &Client,
        repository: &RepositoryName,
        previous: Option<&RepositorySummary>,
        tags: &[(Tag, Digest)],
        listed: usize,
        db_built: &str,
        own: &Trust,
    ) -> Result<RepositorySummary, CatalogError> {
        let mut images: BTreeMap<String, SummaryImage> = BTreeMap::new();
        let (mut unread, mut seen) = (Vec::new(), BTreeSet::new());
        for (_, digest) in tags {
            let key = digest.to_string();
            if !seen.insert(key.clone()) {
                continue;
            }
            match previous
                .and_then(|p| p.images.get(&key))
                .filter(|image| image.complete(db_built))
            {
                Some(image) => {
                    images.insert(key, image.clone());
                }
                None => unread.push(digest.clone()),
            }
        }
        let read: Vec<(String, Option<SummaryImage>)> = stream::iter(unread)
            .map(|digest| async move {
                match Box::pin(SummaryImage::read(client, repository, &digest, own)).await {
                    // A set read now and found complete was just checked; an incomplete
                    // one is read again anyway, and stamping it would change the
                    // summary at every walk.
                    Ok(mut image) => {
                        if image.complete(db_built) {
                            image.checked = Some(now_rfc3339());
                        }
                        Ok((digest.to_string(), Some(image)))
                    }
                    Err(e) if super::error::about_the_tag_alone(&e) => {
                        tracing::warn!(%repository, %digest, error = %e, "left out of the repository's summary");
                        Ok((digest.to_string(), None))
                    }
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        images.extend(
            read.into_iter()
                .filter_map(|(digest, image)| Some((digest, image?))),
        );
        let tags = tags
            .iter()
            .map(|(t, d)| (t.to_string(), d.to_string()))
            .filter(|(_, d)| images.contains_key(d))
            .collect();
        Ok(RepositorySummary {
            repository: repository.to_string(),
            listed,
            tags,
            images,
        })
    }

    /// The image `tag` names, when it names this digest.
    pub fn image(&self, tag: &str, digest: &Digest) -> Option<&SummaryImage> {
        let named = self.tags.get(tag)?;
        (*named == digest.to_string())
            .then(|| self.images.get(named))
            .flatten()
    }

    /// The labels of the image `tag` names.
    pub fn labels(&self, tag: &str) -> Option<&BTreeMap<String, String>> {
        Some(&self.images.get(self.tags.get(tag)?)?.labels)
    }

    /// The summary of `repository` stored in `stored_in`, as `trust` lets it be read;
    /// `None` when there is none, or it describes another repository.
    pub async fn stored(
        client: &Client,
        stored_in: &RepositoryName,
        repository: &RepositoryName,
        trust: &Trust,
    ) -> Result<Option<StoredDocument<RepositorySummary>>, CatalogError> {
        let tag = summary_tag(repository);
        let found = super::stored::read::<RepositorySummary>(
            client,
            stored_in,
            tag.as_str(),
            REPOSITORY_SUMMARY,
            trust,
        )
        .await?;
        Ok(found.filter(|s| {
            let ours = s.document.get().repository == repository.as_str();
            if !ours {
                tracing::warn!(%repository, "a stored summary describes another repository; ignored");
            }
            ours
        }))
    }
}

/// The stored summary of `repository` a view may read instead of walking its tags: one
/// kept in `stored_in` whose signature verifies with `trust`'s keys, for a client that
/// reads with the catalog's own credentials (a caller's may not read every repository
/// the worker summarised).
/// `None` otherwise, and when it cannot be read (logged): the view walks instead.
pub async fn for_view(
    client: &Client,
    stored_in: Option<&RepositoryName>,
    repository: &RepositoryName,
    trust: &Trust,
) -> Option<RepositorySummary> {
    // Without keys nothing proves who wrote a summary: the view walks the registry.
    let stored_in = stored_in.filter(|_| !client.serves_a_caller() && trust.checks())?;
    match RepositorySummary::stored(client, stored_in, repository, trust).await {
        Ok(found) => found.map(|s| s.document.get().clone()),
        Err(e) => {
            tracing::warn!(%repository, error = %e, "the repository's summary cannot be read; walking its tags");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(checked: Option<String>) -> SummaryImage {
        SummaryImage {
            media_type: String::new(),
            labels: BTreeMap::new(),
            platforms: Vec::new(),
            checked,
        }
    }

    #[test]
    fn a_summary_is_believed_for_a_day_after_its_check() {
        let ago = |hours: i64| {
            let at = time::OffsetDateTime::now_utc() - time::Duration::hours(hours);
            Some(crate::artifact::format_time(at))
        };
        assert!(image(ago(0)).recently_checked());
        assert!(image(ago(23)).recently_checked());
        assert!(!image(ago(25)).recently_checked());
        // A time in the future or one that does not parse is no check at all.
        assert!(!image(ago(-2)).recently_checked());
        assert!(!image(Some("~".into())).recently_checked());
        assert!(!image(None).recently_checked());
    }
}
