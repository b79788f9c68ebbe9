//! The reconcile walk: every tag of every covered repository, each digest once,
//! checked with the publish plan (a referrers call per platform manifest and each
//! artifact's manifest; a signature is checked the first time the process sees it). What
//! lacks a complete, current, signed set becomes a job, and every tag's image goes into
//! the repository's release log. The worker runs it on an interval; `refcat backfill`
//! runs it once in the foreground.
//!
//! Where the repository's signed summary says a tag's image is complete for the current
//! DB, and that was checked in the registry within a day, one HEAD of the tag confirms
//! it still names that image, and nothing more is read: an unchanged registry costs
//! about one request per tag, and each set is still checked in full once a day. The walk then writes each
//! repository's summary from the tags it found.

use std::collections::HashSet;
use std::sync::Mutex;

use futures_util::{stream, StreamExt as _};

use super::job::JobContext;
use super::Job;
use crate::catalog::platforms::is_image;
use crate::catalog::repositories::RepositoryPattern;
use crate::catalog::summary::{RepositorySummary, SummaryImage};
use crate::catalog::CatalogError;
use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::publish::PublishError;
use crate::reference::{Reference, RepositoryName, Tag, Target};
use crate::registry::RegistryError;

/// Tags of one repository checked at once.
const CONCURRENCY: usize = 8;

/// What one walk found.
#[derive(Debug, Default)]
pub struct Walk {
    /// Distinct image digests checked.
    pub checked: usize,
    /// Images found lacking something (each handed to `found` as it was found).
    pub lacking: usize,
    /// Every tag that names an image, with the image's digest.
    pub image_tags: Vec<(RepositoryName, Tag, Digest)>,
    /// Tags that could not be checked, with why; the next walk tries them again.
    pub errors: Vec<(String, String)>,
    /// Globs no listing could expand (`_catalog` was refused), with the refusal.
    pub unexpanded: Option<(Vec<RepositoryPattern>, RegistryError)>,
}

/// Walks the registry. `progress` hears about each tag as it is checked; `found` gets
/// each job as soon as it is known, so work can start before the walk ends.
pub async fn walk(
    context: &JobContext,
    mut progress: impl FnMut(&str),
    mut found: impl FnMut(Job),
) -> Result<Walk, CatalogError> {
    let client = &context.client;
    let mut walk = Walk::default();
    let seen = Mutex::new(HashSet::new());
    let (listed, unexpanded) = context.repositories.list(client).await?.into_parts();
    walk.unexpanded = unexpanded;
    for repository in listed {
        let tags = match client.list_tags(&repository, None).await {
            Ok(tags) => tags,
            Err(e) => {
                walk.errors.push((repository.to_string(), e.to_string()));
                continue;
            }
        };
        let mut releases = Vec::new();
        let errors_before = walk.errors.len();
        let summary = match context.stored_summary(&repository).await {
            Ok(summary) => summary,
            Err(e) => {
                tracing::warn!(error = %e, "walking without the repository's summary");
                None
            }
        };
        // Without the DB's build time nothing is called complete: every tag is checked.
        let db_built = context.publisher.grype_db().await.map(|s| s.built);
        let known = Known {
            summary: summary.as_ref().map(|s| s.get()),
            db_built: db_built.as_deref().unwrap_or_default(),
        };
        let tags: Vec<Tag> = tags.into_iter().filter(|t| !t.is_supporting()).collect();
        let (mut images, mut rechecked) = (Vec::new(), Vec::new());
        // Tags are checked a few at a time (a check waits on the registry, one request
        // after another), their outcomes taken in the listing's order.
        let mut checks = std::pin::pin!(checks(context, &repository, &tags, &known, &seen));
        while let Some((tag, checked)) = checks.next().await {
            let name = format!("{repository}:{tag}");
            progress(&name);
            match checked {
                Ok((image, job, checked)) => {
                    if checked {
                        rechecked.extend(image.as_ref().map(|d| d.digest.clone()));
                    }
                    if let Some(image) = &image {
                        let digest = image.digest.clone();
                        images.push((tag.clone(), digest.clone()));
                        walk.image_tags
                            .push((repository.clone(), tag.clone(), digest));
                    }
                    releases.extend(image.map(|d| (tag.clone(), d)));
                    if let Some(job) = job {
                        walk.lacking += 1;
                        found(job);
                    }
                }
                Err(e) => walk.errors.push((name, e.to_string())),
            }
        }
        // Every tag is in `releases` only when every one could be checked.
        let every_tag = walk.errors.len() == errors_before;
        if every_tag {
            let listed = tags.len();
            if let Err(e) = context
                .summarise(
                    &repository,
                    summary.as_ref(),
                    &images,
                    listed,
                    &[],
                    &rechecked,
                )
                .await
            {
                walk.errors.push((format!("{repository} summary"), e));
            }
        }
        if let Err(e) = context
            .record_releases(&repository, &releases, every_tag)
            .await
        {
            walk.errors
                .push((format!("{repository} release log"), e.to_string()));
        }
    }
    walk.checked = seen.lock().expect("seen lock").len();
    Ok(walk)
}

/// What the repository's stored summary says, and the DB results are judged by.
struct Known<'a> {
    summary: Option<&'a RepositorySummary>,
    db_built: &'a str,
}

impl Known<'_> {
    /// The image the summary says `tag` names, when it calls that image complete.
    fn complete(&self, tag: &Tag) -> Option<(&str, &SummaryImage)> {
        let summary = self.summary?;
        let (digest, image) = summary
            .tags
            .get_key_value(tag.as_str())
            .and_then(|(_, d)| summary.images.get_key_value(d))?;
        (image.complete(self.db_built) && image.recently_checked())
            .then_some((digest.as_str(), image))
    }
}

/// What [`check`] found for each of `tags`, in their order, [`CONCURRENCY`] at a time.
fn checks<'a>(
    context: &'a JobContext,
    repository: &'a RepositoryName,
    tags: &'a [Tag],
    known: &'a Known<'a>,
    seen: &'a Mutex<HashSet<String>>,
) -> impl futures_util::Stream<Item = (&'a Tag, Checked)> + 'a {
    stream::iter(tags)
        .map(move |tag| async move { (tag, check(context, repository, tag, known, seen).await) })
        .buffered(CONCURRENCY)
}

/// What [`check`] found: the image, a job, whether its set was checked in full.
type Checked = Result<(Option<Descriptor>, Option<Job>, bool), PublishError>;

/// The image `tag` points at (when it is one), a job for it when it lacks something and
/// was not seen yet, and whether its set was checked in full and found complete.
async fn check(
    context: &JobContext,
    repository: &RepositoryName,
    tag: &Tag,
    known: &Known<'_>,
    seen: &Mutex<HashSet<String>>,
) -> Checked {
    let first_sight = |key: String| seen.lock().expect("seen lock").insert(key);
    let client = &context.client;
    if let Some((digest, image)) = known.complete(tag) {
        let head = client
            .head_manifest(repository, &Target::Tag(tag.clone()))
            .await?;
        if let Some(found) = head.filter(|d| d.digest.to_string() == digest) {
            if first_sight(format!("{repository}@{digest}")) {
                let subjects: Vec<Digest> = image
                    .platforms
                    .iter()
                    .filter_map(|p| crate::digest::parse(&p.digest).ok())
                    .collect();
                context.note_complete(repository, subjects.iter());
            }
            return Ok((Some(found), None, false));
        }
    }
    let fetched = client
        .get_manifest(repository, &Target::Tag(tag.clone()))
        .await?;
    if !is_image(&fetched.manifest) {
        return Ok((None, None, false));
    }
    let image = fetched.descriptor();
    if !first_sight(format!("{repository}@{}", fetched.digest)) {
        return Ok((Some(image), None, false));
    }
    let reference = Reference {
        registry: client.registry().to_string(),
        repository: repository.clone(),
        target: Target::Digest(fetched.digest.clone()),
    };
    let plan = context.publisher.plan_fetched(&reference, &fetched).await?;
    let lacking = plan.iter().any(|(_, _, missing)| missing.any());
    if !lacking {
        context.note_complete(
            repository,
            plan.iter().map(|(s, _, _)| &s.descriptor.digest),
        );
    }
    // The tag goes with the job: its run records the release and finds the stream's
    // previous one before publishing.
    // The DB the plan judged by goes too: a replica with an older one must not find its
    // own older result current.
    let db_built = context.publisher.grype_db().await?.built;
    let job = lacking.then(|| Job {
        repository: repository.clone(),
        target: Target::Pinned(tag.clone(), fetched.digest.clone()),
        db_built: Some(db_built),
    });
    Ok((Some(image), job, !lacking))
}
