//! The reconcile walk: every tag of every repository in `_catalog`, each digest once,
//! checked with the publish plan (one referrers call per platform manifest). What
//! lacks a complete, current, signed set becomes a job. The worker runs it on an
//! interval; `refcat backfill` runs it once in the foreground.

use std::collections::HashSet;

use super::job::is_image;
use super::Job;
use crate::publish::{PublishError, Publisher};
use crate::reference::{Reference, Target};
use crate::registry::{Client, RegistryError};

/// What one walk found.
#[derive(Debug, Default)]
pub struct Walk {
    /// Distinct image digests checked.
    pub checked: usize,
    /// Images lacking something, by digest.
    pub missing: Vec<Job>,
    /// Tags that could not be checked, with why; the next walk tries them again.
    pub errors: Vec<(String, String)>,
}

/// Walks the registry. `progress` hears about each tag as it is checked.
pub async fn walk(
    client: &Client,
    publisher: &Publisher,
    mut progress: impl FnMut(&str),
) -> Result<Walk, RegistryError> {
    let mut walk = Walk::default();
    let mut seen = HashSet::new();
    for repository in client.list_repositories().await? {
        let tags = match client.list_tags(&repository, None).await {
            Ok(tags) => tags,
            Err(e) => {
                walk.errors.push((repository.to_string(), e.to_string()));
                continue;
            }
        };
        for tag in tags.into_iter().filter(|t| !t.is_supporting()) {
            let name = format!("{repository}:{tag}");
            progress(&name);
            let checked = check(client, publisher, &repository, Target::Tag(tag), &mut seen).await;
            match checked {
                Ok(None) => {}
                Ok(Some(job)) => walk.missing.push(job),
                Err(e) => walk.errors.push((name, e.to_string())),
            }
        }
    }
    walk.checked = seen.len();
    Ok(walk)
}

/// A job for the image at `target` when it lacks something and was not seen yet.
async fn check(
    client: &Client,
    publisher: &Publisher,
    repository: &crate::reference::RepositoryName,
    target: Target,
    seen: &mut HashSet<String>,
) -> Result<Option<Job>, PublishError> {
    let fetched = client.get_manifest(repository, &target).await?;
    if !seen.insert(format!("{repository}@{}", fetched.digest)) || !is_image(&fetched.manifest) {
        return Ok(None);
    }
    let reference = Reference {
        registry: client.registry().to_string(),
        repository: repository.clone(),
        target: Target::Digest(fetched.digest),
    };
    let plan = publisher.plan(&reference).await?;
    let lacking = plan.iter().any(|(_, _, missing)| missing.any());
    Ok(lacking.then(|| Job {
        repository: repository.clone(),
        target: reference.target,
    }))
}
