//! Bounds shared by refcat's in-memory caches. What is addressed by digest cannot change,
//! so it stays until memory runs short; what is addressed by name (tags, listings,
//! referrer lists) expires after a short TTL so that pushes show up.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use moka::future::{Cache, CacheBuilder};

/// How long name-addressed entries live, and how many bytes each cache may hold.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    /// TTL of entries that can change: tag resolutions, listings, referrer lists, and
    /// the views built from them.
    pub ttl: Duration,
    /// Bytes kept per cache (estimated from the entries' sizes).
    pub max_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(30),
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

impl CacheConfig {
    /// A cache for content addressed by digest: bounded by bytes, never expired.
    pub(crate) fn immutable<K, V>(&self, weigh: fn(&K, &V) -> usize) -> Cache<K, V>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        self.bounded(weigh).build()
    }

    /// A cache for content addressed by name: bounded by bytes, expired after the TTL.
    pub(crate) fn expiring<K, V>(&self, weigh: fn(&K, &V) -> usize) -> Cache<K, V>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        self.bounded(weigh).time_to_live(self.ttl).build()
    }

    fn bounded<K, V>(&self, weigh: fn(&K, &V) -> usize) -> CacheBuilder<K, V, Cache<K, V>>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        Cache::builder()
            .max_capacity(self.max_bytes)
            .weigher(move |k: &K, v: &V| u32::try_from(weigh(k, v)).unwrap_or(u32::MAX))
    }
}

/// `fetch`'s answer through `cache` under `key`: one fetch for any number of concurrent
/// callers, none while the entry lives. A failure reaches every caller that waited for
/// it and is not kept.
pub(crate) async fn coalesced<K, V, E>(
    cache: &Cache<K, V>,
    key: K,
    fetch: impl Future<Output = Result<V, E>>,
) -> Result<V, E>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    // Boxed: moka's coalescing future is large, and views nest many of these.
    cache
        .try_get_with(key, Box::pin(fetch))
        .await
        .map_err(|shared: Arc<E>| shared.as_ref().clone())
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
            Ok::<u32, String>(7)
        };
        let all = futures_util::future::join_all(
            (0..16).map(|_| coalesced(&cache, "k".to_string(), fetch())),
        )
        .await;
        assert!(all.iter().all(|r| matches!(r, Ok(7))));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        let failing = async { Err("not found".to_string()) };
        let failed = coalesced(&cache, "gone".to_string(), failing).await;
        assert_eq!(failed, Err("not found".to_string()));
        assert_eq!(
            coalesced(&cache, "gone".to_string(), fetch())
                .await
                .unwrap(),
            7
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }
}
