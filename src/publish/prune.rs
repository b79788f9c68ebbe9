//! `--keep N` and replaced catalog documents: deleting what refcat wrote and no longer
//! needs. Only an [`Owned`] is deleted, which [`Trust::prove_owned`] builds right
//! before, from refcat's own verified artifact: its signatures with the publisher's key
//! are checked again, and only manifests that hold nothing but those signatures go with
//! it. A `.sig` tag, a tag-schema index or a listing that a pusher pointed elsewhere is
//! left alone.
//!
//! The order keeps the invariant that whatever is listed is complete and signed: an
//! artifact leaves its subject's listing first, then its manifest goes, and its
//! signatures go last. A run that dies in between leaves only unlisted leftovers.

use super::PublishError;
use crate::digest::Digest;
use crate::registry::{Client, RegistryError};
use crate::trust::{Candidate, Owned, Trust, Verified};

/// Deletes `stale` (refcat's own artifacts on their subject) and their signatures; the
/// ones deleted. A registry that refuses deletes (405) keeps them stored, which is
/// logged (without the referrers API, the first has already left the tag-schema listing).
pub async fn artifacts(
    client: &Client,
    own: &Trust,
    stale: &[Verified<Candidate>],
) -> Result<Vec<Digest>, PublishError> {
    let mut deleted = Vec::new();
    for artifact in stale {
        let Some(owned) = own.prove_owned(client, artifact).await? else {
            continue;
        };
        match delete(client, &owned).await {
            Ok(()) => deleted.push(owned.origin().artifact().clone()),
            Err(e) if e.is_unsupported() => {
                tracing::warn!(repository = %owned.origin().repository(), error = %e, "the registry does not allow deletes: older Grype artifacts stay (--keep is not applied)");
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(deleted)
}

/// Deletes `old`, a catalog document of refcat's own its tag has moved away from, and
/// its signatures. A registry that refuses deletes keeps it, which is logged.
pub async fn replaced<T>(
    client: &Client,
    own: &Trust,
    old: &Verified<T>,
) -> Result<(), PublishError> {
    let Some(owned) = own.prove_owned(client, old).await? else {
        return Ok(());
    };
    match delete(client, &owned).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_unsupported() => {
            tracing::warn!(repository = %owned.origin().repository(), error = %e, "the registry does not allow deletes: the replaced document stays, untagged");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes `owned`: out of its subject's listing first, then its manifest, then its
/// signature manifests and the tag-schema index that listed only them.
async fn delete(client: &Client, owned: &Owned) -> Result<(), RegistryError> {
    let repository = owned.origin().repository();
    match owned.origin().subject() {
        Some(subject) => {
            client
                .delete_referrer(repository, subject, owned.origin().artifact())
                .await?
        }
        None => {
            client
                .delete_manifest(repository, owned.origin().artifact())
                .await?
        }
    }
    for signature in owned.signatures().iter().chain(owned.listing()) {
        match client.delete_manifest(repository, signature).await {
            Ok(()) => {}
            // Deleting a bundle may take its tag-schema index along on some registries.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
