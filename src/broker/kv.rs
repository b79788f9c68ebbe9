//! Key-value buckets that make work happen once across replicas.
//!
//! - **Locks** (`refcat-locks`): a key is created by its holder and renewed while the
//!   work runs; the bucket's age limit frees the lock of a replica that died.
//! - **Schedules** (`refcat-schedule`): when a periodic task last ran, claimed with a
//!   compare-and-set, so that one replica runs it per interval; and markers created once
//!   (one re-scan fan-out per Grype DB build).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use super::streams::error_chain;
use super::BrokerError;
use crate::locks::{Lease, Leasing};

/// A lock nobody renews is free after this.
const LOCK_TTL: Duration = Duration::from_secs(15);
/// How long after a renewal was sent its holder counts on the lock: the broker keeps
/// it a third of [`LOCK_TTL`] longer, for a write begun just before.
const LEASE: Duration = Duration::from_secs(10);
/// The longest wait between two tries for a busy lock.
const LOCK_POLL: Duration = Duration::from_millis(500);

async fn bucket(
    context: &jetstream::Context,
    name: &str,
    max_age: Duration,
) -> Result<kv::Store, BrokerError> {
    context
        .create_key_value(kv::Config {
            bucket: name.into(),
            history: 1,
            max_age,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| BrokerError::creating(format!("the bucket {name}"), &e))
}

/// A KV key for any text: keys take only a few characters, names take many.
fn key_of(prefix: &str, name: &str) -> String {
    let hash: String = Sha256::digest(name.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{prefix}.{hash}")
}

/// Locks that hold across replicas.
#[derive(Clone)]
pub struct Locks {
    store: kv::Store,
    /// Who holds a lock: this process.
    owner: bytes::Bytes,
}

impl std::fmt::Debug for Locks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Locks")
    }
}

/// A held lock: renewed until dropped, then released. A lock is a lease: a holder that
/// could not renew it in time may have lost it to another ([`LockGuard::is_lost`]).
#[derive(Debug)]
pub struct LockGuard {
    store: kv::Store,
    key: String,
    revision: Arc<AtomicU64>,
    renew: tokio::task::JoinHandle<()>,
    /// Until when the lease holds, as the renewals extend it; `None` once the broker
    /// said another holder has the key.
    lease: watch::Receiver<Option<Instant>>,
    /// The runtime that took the lock: the release runs there, wherever the guard is
    /// dropped (a guard may outlive its task, and be dropped on a thread outside any
    /// runtime; once that runtime is gone, the lock frees itself when its age runs out).
    runtime: tokio::runtime::Handle,
}

impl LockGuard {
    /// Whether the lock may be another's now: the broker refused its renewal (the key
    /// changed hands), or no renewal got through for so long that the key may have
    /// expired (a broker out of reach, a process that was stalled). Work under the lock
    /// checks this right before each write the lock guards, and writes nothing more once
    /// it is true.
    pub fn is_lost(&self) -> bool {
        self.lease
            .borrow()
            .is_none_or(|until| Instant::now() >= until)
    }
}

impl crate::locks::Lease for LockGuard {
    fn is_lost(&self) -> bool {
        LockGuard::is_lost(self)
    }
}

impl crate::locks::SharedLocks for Locks {
    fn lock<'a>(&'a self, name: &'a str) -> Leasing<'a> {
        Box::pin(async move {
            let guard = Locks::lock(self, name).await?;
            Ok(Box::new(guard) as Box<dyn Lease>)
        })
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.renew.abort();
        let (store, key) = (self.store.clone(), std::mem::take(&mut self.key));
        let revision = self.revision.load(Ordering::Relaxed);
        self.runtime.spawn(async move {
            if let Err(e) = store.delete_expect_revision(&key, Some(revision)).await {
                tracing::debug!(error = %e, "a lock was not released; it frees itself when its age runs out");
            }
        });
    }
}

impl Locks {
    pub(super) async fn ensure(context: &jetstream::Context) -> Result<Locks, BrokerError> {
        let owner = format!("{}@{}", std::process::id(), hostname());
        Ok(Locks {
            store: bucket(context, "refcat-locks", LOCK_TTL).await?,
            owner: owner.into(),
        })
    }

    /// Waits for the lock named `name`, held until the guard drops.
    pub async fn lock(&self, name: &str) -> Result<LockGuard, BrokerError> {
        let mut wait = Duration::from_millis(20);
        loop {
            if let Some(guard) = self.try_lock(name).await? {
                return Ok(guard);
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(LOCK_POLL);
        }
    }

    /// The lock named `name` when nobody holds it.
    pub async fn try_lock(&self, name: &str) -> Result<Option<LockGuard>, BrokerError> {
        let key = key_of("lock", name);
        let asked = Instant::now();
        match self.store.create(&key, self.owner.clone()).await {
            Ok(revision) => Ok(Some(self.held(name, key, revision, asked))),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(BrokerError::failed(
                format!("taking the lock {name}"),
                error_chain(&e),
            )),
        }
    }

    /// The guard of the lock `name`, taken as `key` at `revision` by a request sent at
    /// `asked`, and the task that renews it.
    fn held(&self, name: &str, key: String, revision: u64, asked: Instant) -> LockGuard {
        let revision = Arc::new(AtomicU64::new(revision));
        let (lease, watched) = watch::channel(Some(asked + LEASE));
        let renew = tokio::spawn(renew(
            self.store.clone(),
            key.clone(),
            self.owner.clone(),
            revision.clone(),
            lease,
            name.to_string(),
        ));
        LockGuard {
            store: self.store.clone(),
            key,
            revision,
            renew,
            lease: watched,
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

/// Renews the lock `key` at `revision` every third of its age until its guard drops,
/// extending `lease` with each renewal; once the lock is lost, says so and stops.
async fn renew(
    store: kv::Store,
    key: String,
    owner: bytes::Bytes,
    revision: Arc<AtomicU64>,
    lease: watch::Sender<Option<Instant>>,
    name: String,
) {
    loop {
        tokio::time::sleep(LOCK_TTL / 3).await;
        let asked = Instant::now();
        let current = revision.load(Ordering::Relaxed);
        match store.update(&key, owner.clone(), current).await {
            Ok(next) => {
                revision.store(next, Ordering::Relaxed);
                lease.send_replace(Some(asked + LEASE));
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                tracing::warn!(lock = %name, "a lock could not be renewed: it expired, or another replica took it; the work under it stops before its next write");
                lease.send_replace(None);
                return;
            }
            Err(e) => {
                tracing::warn!(lock = %name, error = %e, "a lock could not be renewed");
                if lease.borrow().is_none_or(|until| Instant::now() >= until) {
                    return;
                }
            }
        }
    }
}

/// Schedules that let one replica act for all.
#[derive(Clone)]
pub struct Schedule {
    store: kv::Store,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schedule")
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Schedule {
    pub(super) async fn ensure(context: &jetstream::Context) -> Result<Schedule, BrokerError> {
        Ok(Schedule {
            store: bucket(context, "refcat-schedule", Duration::ZERO).await?,
        })
    }

    /// Whether this replica runs the task `name` now: it does when nobody ran it within
    /// nine tenths of `interval` (replicas' timers drift) and its claim wins.
    pub async fn claim_every(&self, name: &str, interval: Duration) -> Result<bool, BrokerError> {
        let key = key_of("every", name);
        let failed = |e: &dyn std::error::Error| {
            BrokerError::failed(format!("claiming {name}"), e.to_string())
        };
        let now = now_ms();
        let entry = self.store.entry(&key).await.map_err(|e| failed(&e))?;
        let stamp = || bytes::Bytes::from(now.to_string());
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return match self.store.create(&key, stamp()).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(failed(&e)),
            };
        };
        let last: u64 = std::str::from_utf8(&entry.value)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let due = (interval.as_millis() as u64).saturating_mul(9) / 10;
        if now.saturating_sub(last) < due {
            return Ok(false);
        }
        Ok(self
            .store
            .update(&key, stamp(), entry.revision)
            .await
            .is_ok())
    }

    /// Whether this replica is the first ever to claim `name`.
    pub async fn claim_once(&self, name: &str) -> Result<bool, BrokerError> {
        let key = key_of("once", name);
        match self
            .store
            .create(&key, bytes::Bytes::from(now_ms().to_string()))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(BrokerError::failed(
                format!("claiming {name}"),
                error_chain(&e),
            )),
        }
    }
}

/// This machine's name, for telling lock holders apart in the bucket.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "refcat".into())
}
