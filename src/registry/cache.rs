//! Content the read path fetched, shared between views: manifests and blobs by digest
//! for as long as memory allows, tag resolutions, tag lists, the catalog and referrer
//! lists for the configured TTL. Concurrent misses for one key send one request and
//! share its answer, failures included; failures are not kept.
//!
//! Only clients built with [`ClientConfig::cache`](super::ClientConfig::cache) have one.
//! Their own pushes drop the entries they make stale; pushes by others show up after
//! the TTL.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use bytes::Bytes;
use moka::future::Cache;

use super::error::RegistryError;
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
        }
    }
}

/// `fetch`'s answer through `cache` under `key`: one fetch for any number of concurrent
/// callers, none while the entry lives.
pub(super) async fn through<K, V>(
    cache: &Cache<K, V>,
    key: K,
    fetch: impl Future<Output = Result<V, RegistryError>>,
) -> Result<V, RegistryError>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    // Boxed: moka's coalescing future is large, and views nest many of these.
    cache
        .try_get_with(key, Box::pin(fetch))
        .await
        .map_err(|shared: Arc<RegistryError>| shared.as_ref().clone())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn concurrent_misses_fetch_once_and_failures_are_not_kept() {
        let cache: Cache<String, u32> = CacheConfig::default().expiring(|_, _| 1);
        let fetches = AtomicU32::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(7)
        };
        let all = futures_util::future::join_all(
            (0..16).map(|_| through(&cache, "k".to_string(), fetch())),
        )
        .await;
        assert!(all.iter().all(|r| matches!(r, Ok(7))));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        let failing = async {
            Err(RegistryError::NotFound {
                what: "GET manifest r:t".into(),
                code: "MANIFEST_UNKNOWN".into(),
            })
        };
        let failed = through(&cache, "gone".to_string(), failing).await;
        assert!(failed.is_err_and(|e| e.is_not_found()));
        assert_eq!(
            through(&cache, "gone".to_string(), fetch()).await.unwrap(),
            7
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }
}
