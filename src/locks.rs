//! Async locks by name, for work that must not overlap on one thing (a subject's
//! tag-schema index, a repository's referrers-API probe, a subject being published)
//! while other things proceed. Entries nobody holds are dropped as the map grows, so a
//! long-running worker does not keep one per digest it ever saw. Worker replicas that
//! share a broker hold the same names across processes too ([`KeyedLocks::across`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// A lock per key.
#[derive(Debug, Default)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The broker's locks, and the scope these names live in there.
    shared: Option<(crate::broker::Locks, &'static str)>,
}

/// A held lock, released when dropped.
#[derive(Debug)]
pub struct Held {
    _local: OwnedMutexGuard<()>,
    /// The lock across processes, and its name there.
    shared: Option<(crate::broker::LockGuard, String)>,
}

/// A lock held across processes was lost while its work ran: another process may hold
/// it now, so what the work would write next could undo the other's.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the lock {name} was lost while held (not renewed in time, or taken by another replica): nothing more was written under it; the work is tried again")]
pub struct LockLost {
    /// The lock.
    pub name: String,
}

impl Held {
    /// Whether the lock still holds; to be asked right before each write it guards. A
    /// lock of this process alone always does.
    pub fn check(&self) -> Result<(), LockLost> {
        match &self.shared {
            Some((guard, name)) if guard.is_lost() => Err(LockLost { name: name.clone() }),
            _ => Ok(()),
        }
    }
}

/// The longest wait before a lock is asked of a broker that failed again.
const BROKER_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Map size above which idle entries are swept.
const SWEEP_ABOVE: usize = 1024;

impl KeyedLocks {
    /// Locks that also hold across every process sharing `broker`, under `scope`.
    pub fn across(broker: crate::broker::Locks, scope: &'static str) -> Self {
        KeyedLocks {
            locks: Default::default(),
            shared: Some((broker, scope)),
        }
    }

    /// Waits for the lock named `key` (in this process, then across processes when
    /// shared) and holds it until the guard drops. A broker that fails is asked again
    /// until it answers: the work must not run unlocked.
    pub async fn lock(&self, key: String) -> Held {
        let Some((broker, scope)) = &self.shared else {
            return Held {
                _local: self.local(key).await,
                shared: None,
            };
        };
        let name = format!("{scope}/{key}");
        let local = self.local(key).await;
        // Boxed: the broker's futures are large, and this one is awaited deep inside
        // others (a push's tag-schema edit).
        let shared = Box::pin(shared_lock(broker, &name)).await;
        Held {
            _local: local,
            shared: Some((shared, name)),
        }
    }

    async fn local(&self, key: String) -> OwnedMutexGuard<()> {
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

/// The broker's lock `name`, asked for again until the broker answers: the work must not
/// run unlocked.
async fn shared_lock(broker: &crate::broker::Locks, name: &str) -> crate::broker::LockGuard {
    let mut wait = std::time::Duration::from_millis(200);
    loop {
        match broker.lock(name).await {
            Ok(guard) => return guard,
            Err(e) => {
                tracing::warn!(error = %e, lock = %name, "cannot take a lock from the broker; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(BROKER_RETRY);
            }
        }
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
