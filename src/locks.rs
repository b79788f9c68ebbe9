//! Async locks by name, for work that must not overlap on one thing (a subject's
//! tag-schema index, a repository's referrers-API probe, a subject being published)
//! while other things proceed. Entries nobody holds are dropped as the map grows, so a
//! long-running worker does not keep one per digest it ever saw.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// A lock per key.
#[derive(Debug, Default)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Map size above which idle entries are swept.
const SWEEP_ABOVE: usize = 1024;

impl KeyedLocks {
    /// Waits for the lock named `key` and holds it until the guard drops.
    pub async fn lock(&self, key: String) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().expect("keyed locks");
            if locks.len() > SWEEP_ABOVE {
                // Only the map holds an idle entry.
                locks.retain(|_, l| Arc::strong_count(l) > 1);
            }
            locks.entry(key).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_holder_per_key_and_idle_entries_are_swept() {
        let locks = Arc::new(KeyedLocks::default());
        let held = locks.lock("a".into()).await;
        let other = locks.lock("b".into()).await;
        let waiting = tokio::spawn({
            let locks = locks.clone();
            async move { locks.lock("a".into()).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a second holder of `a` waits");
        drop(held);
        drop(waiting.await.unwrap());
        drop(other);
        for n in 0..=SWEEP_ABOVE + 1 {
            drop(locks.lock(n.to_string()).await);
        }
        assert!(locks.locks.lock().unwrap().len() <= SWEEP_ABOVE + 1);
    }
}
