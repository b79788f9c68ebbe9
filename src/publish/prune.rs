//! `--keep N`: after a new Grype artifact is committed, the older ones beyond the newest
//! N are deleted, each with its signatures. The order keeps the invariant that whatever
//! is listed is complete and signed: an artifact leaves its subject's listing first,
//! then its manifest goes, and its signatures go last. A run that dies in between
//! leaves only unlisted leftovers.

use super::PublishError;
use crate::catalog::existing::Stored;
use crate::digest::Digest;
use crate::reference::{RepositoryName, Target};
use crate::registry::{Client, RegistryError};
use crate::sign::legacy;

/// Deletes `stale` (refcat's artifacts on `subject`) and their signatures; the ones
/// deleted. A registry that refuses deletes (405) keeps them stored, which is logged
/// (without the referrers API, the first has already left the tag-schema listing).
pub async fn artifacts(
    client: &Client,
    repository: &RepositoryName,
    subject: &Digest,
    stale: &[Stored],
) -> Result<Vec<Digest>, PublishError> {
    let mut deleted = Vec::new();
    for artifact in stale.iter().map(Stored::digest) {
        match client.delete_referrer(repository, subject, artifact).await {
            Ok(()) => {}
            Err(e) if e.is_unsupported() => {
                tracing::warn!(repository = %repository, error = %e, "the registry does not allow deletes: older Grype artifacts stay (--keep is not applied)");
                break;
            }
            Err(e) => return Err(e.into()),
        }
        signatures(client, repository, artifact).await?;
        deleted.push(artifact.clone());
    }
    Ok(deleted)
}

/// Deletes `old`, an artifact its tag has moved away from, and its signatures. A
/// registry that refuses deletes keeps it, which is logged.
pub async fn replaced(
    client: &Client,
    repository: &RepositoryName,
    old: &Digest,
) -> Result<(), PublishError> {
    match client.delete_manifest(repository, old).await {
        Ok(()) => Ok(signatures(client, repository, old).await?),
        Err(e) if e.is_unsupported() => {
            tracing::warn!(repository = %repository, error = %e, "the registry does not allow deletes: the replaced artifact stays, untagged");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes every signature of a deleted artifact: its referrers (Sigstore bundles), the
/// tag-schema index that listed them, and a legacy `.sig` tag.
async fn signatures(
    client: &Client,
    repository: &RepositoryName,
    artifact: &Digest,
) -> Result<(), RegistryError> {
    for referrer in client.referrers(repository, artifact, None).await? {
        client.delete_manifest(repository, &referrer.digest).await?;
    }
    // A tag that cannot name this digest (sha512's `.sig`) was never written.
    let mut tags: Vec<_> = legacy::signature_tag(artifact).ok().into_iter().collect();
    // Only a registry without the referrers API has a tag-schema index to delete.
    if client.referrers_api_known(repository) != Some(true) {
        tags.extend(crate::tag_schema::referrers_tag(artifact).ok());
    }
    for tag in tags {
        if let Some(tagged) = client.head_manifest(repository, &Target::Tag(tag)).await? {
            client.delete_manifest(repository, &tagged.digest).await?;
        }
    }
    Ok(())
}
