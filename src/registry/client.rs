//! The registry client: one per registry host, cheap to clone, safe to share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cache::ContentCache;
use super::counter::RequestCounter;
use super::credentials::{Credentials, Secret};
use super::tls::Tls;
use crate::cache::CacheConfig;

/// Requests one client (with the clients of its callers) has waiting for the registry's
/// answer at once. Views fan out over repositories, tags and platforms, and several run
/// at once: without a bound their product reaches the registry, and each request holds a
/// connection and a descriptor.
pub(super) const MAX_IN_FLIGHT: usize = 32;

/// How to reach and talk to one registry.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Registry host[:port].
    pub registry: String,
    /// Credentials (redacted in `Debug`).
    pub credentials: Credentials,
    /// Use plain HTTP. Otherwise HTTPS, except on loopback, where plain HTTP is used
    /// when the registry does not speak TLS (as behind `kubectl port-forward` it may).
    pub plain_http: bool,
    /// Which certificates are trusted.
    pub tls: Tls,
    /// The credentials are a catalog caller's (`serve --auth pass-through`), not
    /// refcat's own: views over many repositories show only what the caller may read.
    pub for_caller: bool,
    /// Locks across processes, when worker replicas share them: a subject's tag-schema
    /// index is then edited by one process at a time across all of them.
    pub shared_locks: Option<Arc<dyn crate::locks::SharedLocks>>,
    /// Timeout for each request attempt.
    pub request_timeout: Duration,
    /// Attempts for idempotent requests that fail with 429/5xx or time out.
    pub max_attempts: u32,
    /// First backoff delay; it doubles per attempt.
    pub initial_backoff: Duration,
    /// Upper bound on any single wait, including a registry's `Retry-After`.
    pub max_backoff: Duration,
    /// Largest manifest refcat will read (the distribution spec suggests 4 MiB).
    pub max_manifest_bytes: u64,
    /// Largest blob refcat will read into memory.
    pub max_blob_bytes: u64,
    /// Page size for `_catalog` and tags listings.
    pub page_size: u32,
    /// Keep what is read (see [`cache`](super::cache)); for clients that serve reads.
    pub cache: Option<CacheConfig>,
    /// Bearer token services, other than the registry's own host and port, that may be
    /// asked for tokens with the registry credentials: `HOST` (on its scheme's default
    /// port) or `HOST:PORT`. A token service anywhere else is not asked at all: a
    /// registry cannot make refcat send requests, or credentials, to any host by naming
    /// it as its realm. Docker Hub's `auth.docker.io` is trusted for Docker Hub.
    pub trusted_realms: Vec<String>,
}

impl ClientConfig {
    /// Defaults for `registry`: anonymous, 30 s per request, 4 attempts.
    pub fn new(registry: impl Into<String>) -> Self {
        ClientConfig {
            registry: registry.into(),
            credentials: Credentials::Anonymous,
            plain_http: false,
            tls: Tls::default(),
            for_caller: false,
            shared_locks: None,
            request_timeout: Duration::from_secs(30),
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_manifest_bytes: 4 * 1024 * 1024,
            max_blob_bytes: 256 * 1024 * 1024,
            page_size: 100,
            cache: None,
            trusted_realms: Vec::new(),
        }
    }

    fn scheme(&self) -> u8 {
        if self.plain_http {
            HTTP
        } else if is_loopback(&self.registry) {
            UNDECIDED
        } else {
            HTTPS
        }
    }
}

/// The scheme of a client, in [`Inner::scheme`]: HTTPS, plain HTTP, or not known yet (a
/// loopback registry whose first answer tells).
const HTTPS: u8 = 1;
const HTTP: u8 = 2;
const UNDECIDED: u8 = 0;

/// Whether `host[:port]` names this machine, where plain HTTP is acceptable.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The locks of tag-schema edits: shared across replicas when the config says so.
fn edit_locks(config: &ClientConfig) -> crate::locks::KeyedLocks {
    match &config.shared_locks {
        Some(locks) => crate::locks::KeyedLocks::across(locks.clone(), "tag-schema"),
        None => Default::default(),
    }
}

/// Blobs remembered as present, and for how long.
const KNOWN_BLOBS: u64 = 100_000;
const KNOWN_BLOBS_TTL: Duration = Duration::from_secs(600);

/// A client for one registry.
#[derive(Clone, Debug)]
pub struct Client {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) config: ClientConfig,
    /// [`HTTPS`], [`HTTP`] or [`UNDECIDED`].
    scheme: AtomicU8,
    pub(super) counter: Arc<RequestCounter>,
    /// `Authorization` values by auth scope; "" holds a registry-wide Basic header.
    pub(super) auth: Mutex<HashMap<String, Secret>>,
    /// Per repository: whether the registry serves the referrers API.
    pub(super) referrers_api: Mutex<HashMap<String, bool>>,
    /// `repository@digest` of blobs this client has seen in the registry lately, so that
    /// a shared blob is not asked for again. Bounded, and forgotten after a while or as
    /// soon as a manifest push says a blob is unknown (a registry GC removed it).
    pub(super) known_blobs: moka::sync::Cache<String, ()>,
    /// Async locks by name: the referrers API probe per repository.
    pub(super) subject_locks: crate::locks::KeyedLocks,
    /// One upload at a time per `repository@digest`: distribution 2.8 can lose a blob
    /// that two sessions commit at once, and the manifest naming it is then refused.
    pub(super) upload_locks: crate::locks::KeyedLocks,
    /// Tag-schema read-modify-write per subject; across replicas with shared locks.
    pub(super) edit_locks: crate::locks::KeyedLocks,
    /// What was read, when the config asks for a cache.
    pub(super) cache: Option<ContentCache>,
    /// Repositories this client has been allowed to open an upload in.
    pub(super) writable: Mutex<std::collections::HashSet<String>>,
    /// Requests awaiting the registry's answer, shared with the clients of callers.
    pub(super) in_flight: Arc<tokio::sync::Semaphore>,
}

impl Client {
    /// A client for `config.registry`.
    pub fn new(config: ClientConfig) -> Self {
        if config.tls.insecure() {
            tracing::warn!(registry = %config.registry,
                "TLS certificates are NOT checked (--insecure): whoever sits between refcat and the registry can read and change what refcat reads, scans and signs");
        }
        let http = config
            .tls
            .apply(reqwest::Client::builder())
            .user_agent(concat!("refcat/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .expect("the TLS backend initialises");
        let scheme = AtomicU8::new(config.scheme());
        let cache = config.cache.as_ref().map(ContentCache::new);
        let edits = edit_locks(&config);
        Client {
            inner: Arc::new(Inner {
                http,
                config,
                scheme,
                counter: Default::default(),
                auth: Mutex::new(HashMap::new()),
                referrers_api: Mutex::new(HashMap::new()),
                known_blobs: moka::sync::Cache::builder()
                    .max_capacity(KNOWN_BLOBS)
                    .time_to_live(KNOWN_BLOBS_TTL)
                    .build(),
                subject_locks: Default::default(),
                upload_locks: Default::default(),
                edit_locks: edits,
                cache,
                writable: Default::default(),
                in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            }),
        }
    }

    /// A client reading with a catalog caller's `credentials` (`serve --auth
    /// pass-through`), `scope` naming the caller in cache keys. It shares this client's
    /// connections, request counts, limit on requests in flight and caches: the content
    /// read by digest, which it takes only for repositories where the registry answered
    /// its own credentials lately, and room for its own tags, listings and referrer
    /// lists under its scope. Its tokens are its own.
    pub fn for_caller(&self, credentials: Credentials, scope: &str) -> Client {
        let inner = &self.inner;
        let config = ClientConfig {
            credentials,
            for_caller: true,
            ..inner.config.clone()
        };
        Client {
            inner: Arc::new(Inner {
                http: inner.http.clone(),
                scheme: AtomicU8::new(inner.scheme.load(Ordering::Relaxed)),
                counter: inner.counter.clone(),
                auth: Default::default(),
                referrers_api: Default::default(),
                known_blobs: moka::sync::Cache::new(0),
                subject_locks: Default::default(),
                upload_locks: Default::default(),
                edit_locks: edit_locks(&config),
                cache: inner.cache.as_ref().map(|cache| cache.for_caller(scope)),
                writable: Default::default(),
                in_flight: inner.in_flight.clone(),
                config,
            }),
        }
    }

    /// The registry host this client talks to.
    pub fn registry(&self) -> &str {
        &self.inner.config.registry
    }

    /// The credentials this client uses, for handing to a scanner that reads the same
    /// registry (redacted in `Debug`).
    pub fn credentials(&self) -> &Credentials {
        &self.inner.config.credentials
    }

    /// Whether this client reads with a catalog caller's credentials.
    pub fn serves_a_caller(&self) -> bool {
        self.inner.config.for_caller
    }

    /// Whether this client keeps what it reads (a serving client does).
    pub fn caches(&self) -> bool {
        self.inner.cache.is_some()
    }

    /// Whether this client speaks plain HTTP to the registry. A loopback registry is
    /// asked over HTTPS first, and counts as plain HTTP only once it answered that
    /// it does not speak TLS.
    pub fn plain_http(&self) -> bool {
        self.inner.scheme.load(Ordering::Relaxed) == HTTP
    }

    /// The registry's base URL (`https://host:port`), and whether the scheme is still a
    /// guess to be confirmed by the answer.
    pub(super) fn base(&self) -> (String, bool) {
        let registry = &self.inner.config.registry;
        match self.inner.scheme.load(Ordering::Relaxed) {
            HTTP => (format!("http://{registry}"), false),
            HTTPS => (format!("https://{registry}"), false),
            _ => (format!("https://{registry}"), true),
        }
    }

    /// The registry answered over HTTPS (`true`) or showed it speaks only plain HTTP.
    pub(super) fn settle_scheme(&self, tls: bool) {
        let scheme = if tls { HTTPS } else { HTTP };
        if self
            .inner
            .scheme
            .compare_exchange(UNDECIDED, scheme, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::debug!(registry = %self.inner.config.registry, tls, "loopback registry scheme settled");
        }
    }

    /// How registry certificates are checked, for scanners that reach the same registry.
    pub fn tls(&self) -> &Tls {
        &self.inner.config.tls
    }

    /// The requests this client has sent so far.
    pub fn counter(&self) -> &RequestCounter {
        &self.inner.counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_unless_asked_or_a_loopback_registry_answers_without_tls() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example:5000"));
        assert_eq!(ClientConfig::new("registry.example").scheme(), HTTPS);
        assert_eq!(ClientConfig::new("127.0.0.1:5000").scheme(), UNDECIDED);
        let mut plain = ClientConfig::new("registry.example");
        plain.plain_http = true;
        assert_eq!(plain.scheme(), HTTP);
        let client = Client::new(ClientConfig::new("127.0.0.1:5000"));
        assert_eq!(client.base(), ("https://127.0.0.1:5000".to_string(), true));
        client.settle_scheme(false);
        client.settle_scheme(true);
        assert_eq!(client.base(), ("http://127.0.0.1:5000".to_string(), false));
        assert!(client.plain_http());
    }

    #[test]
    fn debug_of_a_client_redacts_the_password() {
        let mut config = ClientConfig::new("r.example");
        config.credentials = Credentials::Basic {
            username: "u".into(),
            password: Secret::new("pa55word"),
        };
        let client = Client::new(config);
        assert!(!format!("{client:?}").contains("pa55word"));
    }
}
