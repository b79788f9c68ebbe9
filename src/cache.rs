//! Bounds shared by refcat's in-memory caches. What is addressed by digest cannot change,
//! so it stays until memory runs short; what is addressed by name (tags, listings,
//! referrer lists) expires after a short TTL so that pushes show up.

use std::hash::Hash;
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
