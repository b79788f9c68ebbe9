//! Rendered views, cached: digest-addressed views forever (bounded by bytes), the rest
//! for a short TTL. Concurrent requests for the same cold view share one registry walk.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use moka::future::Cache;
use sha2::{Digest as _, Sha256};

use super::Problem;
use crate::cache::{coalesced, CacheConfig};
use crate::catalog::aggregate::Aggregate;
use crate::catalog::CatalogError;

/// A rendered 200 response.
#[derive(Debug)]
pub struct Rendered {
    /// The body.
    pub body: Bytes,
    /// Its media type.
    pub content_type: &'static str,
    /// Its strong ETag, quoted.
    pub etag: String,
    /// Its `Link` header, for a paged view.
    pub link: Option<String>,
}

impl Rendered {
    /// Renders `value` as JSON with an ETag over the bytes.
    pub fn json(value: &impl serde::Serialize) -> Rendered {
        let body = serde_json::to_vec(value).expect("views serialize");
        Rendered::new(body.into(), "application/json")
    }

    /// An HTML page with an ETag over the bytes.
    pub fn html(page: String) -> Rendered {
        Rendered::new(page.into(), "text/html; charset=utf-8")
    }

    fn new(body: Bytes, content_type: &'static str) -> Rendered {
        let hash = Sha256::digest(&body);
        let etag = format!(
            "\"{}\"",
            hash.iter()
                .take(16)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Rendered {
            body,
            content_type,
            etag,
            link: None,
        }
    }

    /// With `Link` to the other pages of a paged view at `path`: `first`, `prev`,
    /// `next` and `last`, as the distribution API links the next page of tags.
    pub fn paged(mut self, path: &str, page: usize, per_page: usize, pages: usize) -> Rendered {
        let at = |page: usize, rel: &str| {
            format!("<{path}?page={page}&per_page={per_page}>; rel=\"{rel}\"")
        };
        let mut links = vec![at(1, "first")];
        if page > 1 {
            links.push(at((page - 1).min(pages), "prev"));
        }
        if page < pages {
            links.push(at(page + 1, "next"));
        }
        links.push(at(pages, "last"));
        self.link = Some(links.join(", "));
        self
    }
}

/// The two caches. Views rendered for different callers (`serve --auth pass-through`)
/// share the caches under keys scoped by caller, so that one's view never reaches
/// another.
#[derive(Clone)]
pub struct ViewCache {
    live: Cache<String, Arc<Rendered>>,
    immutable: Cache<String, Arc<Rendered>>,
    /// The catalog aggregate, per scope: every view over it (`/v1/vulnerabilities`, one
    /// vulnerability's, a 404 for an id nobody has) reads the one computed this TTL.
    aggregates: Cache<String, Arc<Aggregate>>,
    /// How many times the aggregate was read or walked, for `/metrics`.
    aggregates_made: Arc<std::sync::atomic::AtomicU64>,
    /// The TTL, for Cache-Control.
    pub ttl: Duration,
    /// Prefixed to every key: empty, or a caller's.
    scope: Arc<str>,
}

impl std::fmt::Debug for ViewCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A view's weight: its key and body bytes.
fn weigh<K: AsRef<str>>(key: &K, value: &Arc<Rendered>) -> usize {
    key.as_ref().len() + value.body.len()
}

impl ViewCache {
    /// Caches per `config`.
    pub fn new(config: CacheConfig) -> Self {
        ViewCache {
            live: config.expiring(weigh),
            immutable: config.immutable(weigh),
            aggregates: config.expiring(|key: &String, aggregate: &Arc<Aggregate>| {
                key.len() + aggregate.weight()
            }),
            aggregates_made: Default::default(),
            ttl: config.ttl,
            scope: "".into(),
        }
    }

    /// The same caches, under keys of their own for the caller named `scope`.
    pub fn scoped(&self, scope: &str) -> Self {
        ViewCache {
            scope: format!("{scope} ").into(),
            ..self.clone()
        }
    }

    /// The view under `key`, rendered by `render` once however many ask at the same
    /// time. Errors are not cached.
    pub async fn get(
        &self,
        key: String,
        immutable: bool,
        render: impl std::future::Future<Output = Result<Rendered, Problem>>,
    ) -> Result<Arc<Rendered>, Problem> {
        let cache = if immutable {
            &self.immutable
        } else {
            &self.live
        };
        let key = match self.scope.is_empty() {
            true => key,
            false => format!("{}{key}", self.scope),
        };
        coalesced(cache, key, async { render.await.map(Arc::new) }).await
    }

    /// The catalog aggregate, computed by `compute` once per TTL however many views ask.
    pub async fn aggregate(
        &self,
        compute: impl std::future::Future<Output = Result<Aggregate, CatalogError>>,
    ) -> Result<Arc<Aggregate>, Problem> {
        let key = self.scope.to_string();
        coalesced(&self.aggregates, key, async {
            let made = compute.await.map(Arc::new).map_err(Problem::from);
            self.aggregates_made
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            made
        })
        .await
    }

    /// How many times the catalog aggregate was made (read from its artifact or walked).
    pub fn aggregates_made(&self) -> u64 {
        self.aggregates_made
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}
