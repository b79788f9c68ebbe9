//! Content the read path fetched, shared between views: manifests and blobs by digest
//! for as long as memory allows, tag resolutions, tag lists, the catalog and referrer
//! lists for the configured TTL. Concurrent misses for one key send one request and
//! share its answer, failures included; failures are not kept.
//!
//! Only clients built with [`ClientConfig::cache`](super::ClientConfig::cache) have one.
//! Their own pushes drop the entries they make stale; pushes by others show up after
//! the TTL.
//!
//! Clients that read for different catalog callers share these caches, so that
//! `--cache-mib` bounds them all together. What was read by name (tags, listings,
//! referrer lists) is kept under keys scoped by caller: one caller's never reaches
//! another. Manifests and blobs read by digest are shared, but a caller is served them
//! for a repository only once the registry answered its own credentials there, lately.

use std::sync::Arc;

use bytes::Bytes;
use moka::future::Cache;

use super::fetched::FetchedManifest;
use crate::cache::CacheConfig;
use crate::oci::Descriptor;
use crate::reference::{RepositoryName, Tag};

/// A rough size of one descriptor in a referrer list, annotations included.
const DESCRIPTOR_WEIGHT: usize = 512;

/// The caches of one client, or of one caller's client over the server's.
pub(super) struct ContentCache {
    /// By `repository@digest`.
    pub(super) manifests: Cache<String, Arc<FetchedManifest>>,
    /// By [`named`](Self::named) `repository:tag`.
    pub(super) tagged: Cache<String, Arc<FetchedManifest>>,
    /// By `repository@digest`.
    pub(super) blobs: Cache<String, Bytes>,
    /// Every tag of a repository, sorted, by [`named`](Self::named) repository.
    pub(super) tags: Cache<String, Arc<Vec<Tag>>>,
    /// The `_catalog`, by [`named`](Self::named) "".
    pub(super) repositories: Cache<String, Arc<Vec<RepositoryName>>>,
    /// Every referrer of `repository@subject` ([`named`](Self::named)), unfiltered.
    pub(super) referrers: Cache<String, Arc<Vec<Descriptor>>>,
    /// The [`named`](Self::named) repositories where the registry answered a caller's
    /// credentials within the TTL.
    proven: moka::sync::Cache<String, ()>,
    /// Prefixed to the keys of what was read by name: empty for the client's own, the
    /// caller's scope and a space (no repository name holds one) for a caller's.
    scope: Arc<str>,
}

impl std::fmt::Debug for ContentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentCache")
            .field("manifests", &self.manifests.entry_count())
            .field("blobs", &self.blobs.entry_count())
            .finish_non_exhaustive()
    }
}

fn weigh_manifest<K: AsRef<str>>(key: &K, m: &Arc<FetchedManifest>) -> usize {
    // The parsed document costs about as much as its bytes.
    key.as_ref().len() + 2 * m.bytes.len()
}

/// A rough size of a cache entry beyond its key and value.
const ENTRY_WEIGHT: usize = 64;

impl ContentCache {
    pub(super) fn new(config: &CacheConfig) -> Self {
        ContentCache {
            manifests: config.immutable(weigh_manifest),
            tagged: config.expiring(weigh_manifest),
            blobs: config.immutable(|k: &String, b: &Bytes| k.len() + b.len()),
            tags: config.expiring(|k: &String, tags: &Arc<Vec<Tag>>| {
                k.len() + tags.iter().map(|t| t.as_str().len() + 24).sum::<usize>()
            }),
            repositories: config.expiring(|k: &String, names: &Arc<Vec<RepositoryName>>| {
                k.len() + names.iter().map(|n| n.as_str().len() + 24).sum::<usize>()
            }),
            referrers: config.expiring(|k: &String, list: &Arc<Vec<Descriptor>>| {
                k.len() + list.len() * DESCRIPTOR_WEIGHT
            }),
            proven: moka::sync::Cache::builder()
                .max_capacity(config.max_bytes)
                .weigher(|k: &String, _: &()| {
                    u32::try_from(k.len() + ENTRY_WEIGHT).unwrap_or(u32::MAX)
                })
                .time_to_live(config.ttl)
                .build(),
            scope: "".into(),
        }
    }

    /// The cache of a client reading for the caller named `scope`: these caches, under
    /// keys of the caller's own for what is read by name, and content by digest behind
    /// the caller's own proof of access.
    pub(super) fn for_caller(&self, scope: &str) -> Self {
        ContentCache {
            manifests: self.manifests.clone(),
            tagged: self.tagged.clone(),
            blobs: self.blobs.clone(),
            tags: self.tags.clone(),
            repositories: self.repositories.clone(),
            referrers: self.referrers.clone(),
            proven: self.proven.clone(),
            scope: format!("{scope} ").into(),
        }
    }

    /// The key of what this client read by `name`: its own, under a caller's scope.
    pub(super) fn named(&self, name: impl std::fmt::Display) -> String {
        format!("{}{name}", self.scope)
    }

    /// Whether content by digest of `repository` may come from the shared cache.
    pub(super) fn may_share(&self, repository: &RepositoryName) -> bool {
        self.scope.is_empty() || self.proven.contains_key(&self.named(repository))
    }

    /// The registry answered this client's credentials for a request scoped to
    /// `scope` (`repository:NAME:pull`).
    pub(super) fn answered(&self, scope: &str) {
        if self.scope.is_empty() {
            return;
        }
        if let Some(repository) = scope
            .strip_prefix("repository:")
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(name, _)| name)
        {
            self.proven.insert(self.named(repository), ());
        }
    }
}
