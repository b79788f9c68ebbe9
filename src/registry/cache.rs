//! Content the read path fetched, shared between views: manifests and blobs by digest
//! for as long as memory allows, tag resolutions, tag lists, the catalog and referrer
//! lists for the configured TTL. Concurrent misses for one key send one request and
//! share its answer, failures included; failures are not kept.
//!
//! Only clients built with [`ClientConfig::cache`](super::ClientConfig::cache) have one.
//! Their own pushes drop the entries they make stale; pushes by others show up after
//! the TTL.
//!
//! Clients that read for different catalog callers share the manifests and blobs read
//! by digest, and nothing else: a caller is served shared content of a repository only
//! once the registry answered its own credentials there, lately.

use std::sync::Arc;

use bytes::Bytes;
use moka::future::Cache;

use super::manifests::FetchedManifest;
use crate::cache::CacheConfig;
use crate::oci::Descriptor;
use crate::reference::{RepositoryName, Tag};

/// A rough size of one descriptor in a referrer list, annotations included.
const DESCRIPTOR_WEIGHT: usize = 512;

/// The caches of one client.
pub(super) struct ContentCache {
    /// By `repository@digest`.
    pub(super) manifests: Cache<String, Arc<FetchedManifest>>,
    /// By `repository:tag`.
    pub(super) tagged: Cache<String, Arc<FetchedManifest>>,
    /// By `repository@digest`.
    pub(super) blobs: Cache<String, Bytes>,
    /// Every tag of a repository, sorted.
    pub(super) tags: Cache<RepositoryName, Arc<Vec<Tag>>>,
    /// The `_catalog`, under the unit key.
    pub(super) repositories: Cache<(), Arc<Vec<RepositoryName>>>,
    /// Every referrer of `repository@subject`, unfiltered.
    pub(super) referrers: Cache<String, Arc<Vec<Descriptor>>>,
    /// For a caller's client: the repositories where the registry answered the caller's
    /// credentials within the TTL. `None`: the content is this client's alone.
    proven: Option<moka::sync::Cache<String, ()>>,
    config: CacheConfig,
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

impl ContentCache {
    pub(super) fn new(config: &CacheConfig) -> Self {
        ContentCache {
            manifests: config.immutable(weigh_manifest),
            tagged: config.expiring(weigh_manifest),
            blobs: config.immutable(|k: &String, b: &Bytes| k.len() + b.len()),
            tags: config.expiring(|r: &RepositoryName, tags: &Arc<Vec<Tag>>| {
                r.as_str().len() + tags.iter().map(|t| t.as_str().len() + 24).sum::<usize>()
            }),
            repositories: config.expiring(|_: &(), names: &Arc<Vec<RepositoryName>>| {
                names.iter().map(|n| n.as_str().len() + 24).sum()
            }),
            referrers: config.expiring(|k: &String, list: &Arc<Vec<Descriptor>>| {
                k.len() + list.len() * DESCRIPTOR_WEIGHT
            }),
            proven: None,
            config: *config,
        }
    }

    /// The cache of a client reading for one caller: the content by digest shared with
    /// this one (behind the caller's own proof of access), everything named its own.
    pub(super) fn for_caller(&self) -> Self {
        let own = ContentCache::new(&self.config);
        ContentCache {
            manifests: self.manifests.clone(),
            blobs: self.blobs.clone(),
            proven: Some(
                moka::sync::Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(self.config.ttl)
                    .build(),
            ),
            ..own
        }
    }

    /// Whether content by digest of `repository` may come from the shared cache.
    pub(super) fn may_share(&self, repository: &RepositoryName) -> bool {
        self.proven
            .as_ref()
            .is_none_or(|proven| proven.contains_key(repository.as_str()))
    }

    /// The registry answered this client's credentials for a request scoped to
    /// `scope` (`repository:NAME:pull`).
    pub(super) fn answered(&self, scope: &str) {
        let Some(proven) = &self.proven else { return };
        if let Some(repository) = scope
            .strip_prefix("repository:")
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(name, _)| name)
        {
            proven.insert(repository.to_string(), ());
        }
    }
}
