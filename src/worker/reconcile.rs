//! The reconcile walk: every tag of every covered repository, each digest once,
//! checked with the publish plan (a referrers call per platform manifest and each
//! artifact's manifest; a signature is checked the first time the process sees it). What
//! lacks a complete, current, signed set becomes a job, and every tag's image goes into
//! the repository's release log. The worker runs it on an interval; `refcat backfill`
//! runs it once in the foreground.

use std::collections::HashSet;

use super::job::JobContext;
use super::Job;
use crate::catalog::platforms::is_image;
use crate::catalog::repositories::RepositoryPattern;
use crate::catalog::CatalogError;
use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::publish::PublishError;
use crate::reference::{Reference, RepositoryName, Tag, Target};
use crate::registry::RegistryError;

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
    let mut seen = HashSet::new();
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
        for tag in tags.into_iter().filter(|t| !t.is_supporting()) {
            let name = format!("{repository}:{tag}");
            progress(&name);
            match check(context, &repository, &tag, &mut seen).await {
                Ok((image, job)) => {
                    if let Some(image) = &image {
                        let digest = image.digest.clone();
                        walk.image_tags
                            .push((repository.clone(), tag.clone(), digest));
                    }
                    releases.extend(image.map(|d| (tag, d)));
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
        if let Err(e) = context
            .record_releases(&repository, &releases, every_tag)
            .await
        {
            walk.errors
                .push((format!("{repository} release log"), e.to_string()));
        }
    }
    walk.checked = seen.len();
    Ok(walk)
}

/// The image `tag` points at (when it is one), and a job for it when it lacks
/// something and was not seen yet.
async fn check(
    context: &JobContext,
    repository: &RepositoryName,
    tag: &Tag,
    seen: &mut HashSet<String>,
) -> Result<(Option<Descriptor>, Option<Job>), PublishError> {
    let client = &context.client;
    let fetched = client
        .get_manifest(repository, &Target::Tag(tag.clone()))
        .await?;
    if !is_image(&fetched.manifest) {
        return Ok((None, None));
    }
    let image = fetched.descriptor();
    if !seen.insert(format!("{repository}@{}", fetched.digest)) {
        return Ok((Some(image), None));
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
    Ok((Some(image), job))
}
