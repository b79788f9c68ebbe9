//! Async locks by name, for work that must not overlap on one thing (a subject's
//! tag-schema index, a repository's referrers-API probe, a subject being published)
//! while other things proceed. Entries nobody holds are dropped as the map grows, so a
//! long-running worker does not keep one per digest it ever saw. Processes that share
//! [`SharedLocks`] (worker replicas) hold the same names across processes too
//! ([`KeyedLocks::across`]); what provides them is injected, and nothing here knows it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// Why a lock across processes could not be taken (the service that keeps them is down,
/// say).
pub type SharedLockError = Box<dyn std::error::Error + Send + Sync>;

/// A shared lock being taken: its lease once given.
pub type Leasing<'a> =
    Pin<Box<dyn Future<Output = Result<Box<dyn Lease>, SharedLockError>> + Send + 'a>>;

/// Locks by name that hold across processes.
pub trait SharedLocks: Send + Sync + std::fmt::Debug {
    /// Waits for the lock named `name`, held until the lease drops.
    fn lock<'a>(&'a self, name: &'a str) -> Leasing<'a>;
}

/// A lock held across processes, for as long as its holder renews it; released when
/// dropped.
pub trait Lease: Send + Sync + std::fmt::Debug {
    /// Whether the lock may be another process's now (its renewals stopped getting
    /// through, or another process took it).
    fn is_lost(&self) -> bool;
}

/// A lock per key.
#[derive(Debug, Default)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The locks across processes, and the scope these names live in there.
    shared: Option<(Arc<dyn SharedLocks>, &'static str)>,
}

/// A held lock, released when dropped.
#[derive(Debug)]
pub struct Held {
    _local: OwnedMutexGuard<()>,
    /// The lock across processes, and its name there.
    shared: Option<(Box<dyn Lease>, String)>,
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
            Some((lease, name)) if lease.is_lost() => Err(LockLost { name: name.clone() }),
            _ => Ok(()),
        }
    }
}

/// The longest wait before a shared lock is asked for again after a failure.
const SHARED_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Map size above which idle entries are swept.
const SWEEP_ABOVE: usize = 1024;

impl KeyedLocks {
    /// Locks that also hold across every process sharing `shared`, under `scope`.
    pub fn across(shared: Arc<dyn SharedLocks>, scope: &'static str) -> Self {
        KeyedLocks {
            locks: Default::default(),
            shared: Some((shared, scope)),
        }
    }

    /// Waits for the lock named `key` (in this process, then across processes when
    /// shared) and holds it until the guard drops. Shared locks that fail are asked
    /// again until they answer: the work must not run unlocked.
    pub async fn lock(&self, key: String) -> Held {
        let Some((shared, scope)) = &self.shared else {
            return Held {
                _local: self.local(key).await,
                shared: None,
            };
        };
        let name = format!("{scope}/{key}");
        let local = self.local(key).await;
        let lease = shared_lock(shared.as_ref(), &name).await;
        Held {
            _local: local,
            shared: Some((lease, name)),
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

/// The shared lock `name`, asked for again until it is given: the work must not run
/// unlocked.
async fn shared_lock(shared: &dyn SharedLocks, name: &str) -> Box<dyn Lease> {
    let mut wait = std::time::Duration::from_millis(200);
    loop {
        match shared.lock(name).await {
            Ok(lease) => return lease,
            Err(e) => {
                tracing::warn!(error = %e, lock = %name, "cannot take a shared lock; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(SHARED_RETRY);
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

    /// Leases handed out by name, each lost once its name is in `lost`.
    #[derive(Debug, Default)]
    struct Leases {
        lost: Arc<Mutex<Vec<String>>>,
        taken: Mutex<Vec<String>>,
    }

    #[derive(Debug)]
    struct NamedLease {
        name: String,
        lost: Arc<Mutex<Vec<String>>>,
    }

    impl Lease for NamedLease {
        fn is_lost(&self) -> bool {
            self.lost.lock().unwrap().contains(&self.name)
        }
    }

    impl SharedLocks for Leases {
        fn lock<'a>(&'a self, name: &'a str) -> Leasing<'a> {
            self.taken.lock().unwrap().push(name.to_string());
            let lease = NamedLease {
                name: name.to_string(),
                lost: self.lost.clone(),
            };
            Box::pin(async move { Ok(Box::new(lease) as Box<dyn Lease>) })
        }
    }

    #[tokio::test]
    async fn shared_locks_are_taken_under_their_scope_and_a_lost_one_refuses_its_writes() {
        let leases = Arc::new(Leases::default());
        let locks = KeyedLocks::across(leases.clone(), "edit");
        let held = locks.lock("a@sha256:1".into()).await;
        assert_eq!(*leases.taken.lock().unwrap(), ["edit/a@sha256:1"]);
        assert!(held.check().is_ok());
        leases.lost.lock().unwrap().push("edit/a@sha256:1".into());
        let lost = held.check().unwrap_err();
        assert!(lost.to_string().contains("edit/a@sha256:1"), "{lost}");
        // A lock of this process alone cannot be lost.
        assert!(KeyedLocks::default().lock("a".into()).await.check().is_ok());
    }
}
