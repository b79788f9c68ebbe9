//! `_catalog` and tags listing with `n`/`last` paging and `Link` headers.
//!
//! Registries differ: distribution 2.8 ignores `n` on tags, zot answers 404 for a
//! `last` that is not an existing tag. Paging follows `Link` until it ends, and a
//! repeated link stops the walk instead of looping forever.

use std::sync::Arc;

use reqwest::header::LINK;
use reqwest::Method;
use serde::Deserialize;

use super::client::Client;
use super::counter::RequestKind;
use super::error::RegistryError;
use super::transport::{pull_scope, Request};
use crate::cache::coalesced;
use crate::reference::{RepositoryName, Tag};

const MAX_PAGES: usize = 100_000;
const MAX_PAGE_BYTES: u64 = 16 * 1024 * 1024;

impl Client {
    /// Every repository in the registry's `_catalog`, in the registry's order. Served
    /// from the client's cache when it has one.
    pub async fn list_repositories(&self) -> Result<Vec<RepositoryName>, RegistryError> {
        let Some(cache) = &self.inner.cache else {
            return self.fetch_repositories().await;
        };
        let fetch = async { self.fetch_repositories().await.map(Arc::new) };
        Ok(coalesced(&cache.repositories, cache.named(""), fetch)
            .await?
            .to_vec())
    }

    async fn fetch_repositories(&self) -> Result<Vec<RepositoryName>, RegistryError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let first = format!("/v2/_catalog?n={}", self.inner.config.page_size);
        let names = self
            .walk_pages(
                first,
                RequestKind::Catalog,
                "registry:catalog:*".into(),
                "GET _catalog".into(),
                |body| serde_json::from_slice::<Page>(body).map(|p| p.repositories),
            )
            .await?;
        Ok(parse_all(names, "repository"))
    }

    /// Every tag of `repository`, sorted. With `last`, only tags after it (lexically), even
    /// where the registry answers 404 for a `last` that is not an existing tag. A client
    /// with a cache lists every tag once per TTL and cuts after `last` itself.
    pub async fn list_tags(
        &self,
        repository: &RepositoryName,
        last: Option<&Tag>,
    ) -> Result<Vec<Tag>, RegistryError> {
        let Some(cache) = &self.inner.cache else {
            return self.fetch_tags(repository, last).await;
        };
        let fetch = async { self.fetch_tags(repository, None).await.map(Arc::new) };
        let all = coalesced(&cache.tags, cache.named(repository), fetch).await?;
        Ok(all
            .iter()
            .filter(|t| last.is_none_or(|last| t.as_str() > last.as_str()))
            .cloned()
            .collect())
    }

    async fn fetch_tags(
        &self,
        repository: &RepositoryName,
        last: Option<&Tag>,
    ) -> Result<Vec<Tag>, RegistryError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut first = format!(
            "/v2/{repository}/tags/list?n={}",
            self.inner.config.page_size
        );
        if let Some(last) = last {
            first.push_str(&format!("&last={last}"));
        }
        let what = format!("GET tags of {repository}");
        let parse =
            |body: &[u8]| serde_json::from_slice::<Page>(body).map(|p| p.tags.unwrap_or_default());
        let walked = self
            .walk_pages(
                first,
                RequestKind::Tags,
                pull_scope(repository.as_str()),
                what.clone(),
                parse,
            )
            .await;
        let names = match (walked, last) {
            (Err(e), Some(_)) if e.is_not_found() => {
                // zot: `last` must name an existing tag. List everything, then cut.
                let all = format!(
                    "/v2/{repository}/tags/list?n={}",
                    self.inner.config.page_size
                );
                self.walk_pages(
                    all,
                    RequestKind::Tags,
                    pull_scope(repository.as_str()),
                    what,
                    parse,
                )
                .await?
            }
            (result, _) => result?,
        };
        let mut tags: Vec<Tag> = parse_all(names, "tag");
        tags.sort();
        if let Some(last) = last {
            // distribution 2.8 ignores `last` on tags; apply it here so every registry agrees.
            tags.retain(|t| t.as_str() > last.as_str());
        }
        Ok(tags)
    }

    async fn walk_pages<F>(
        &self,
        first: String,
        kind: RequestKind,
        scope: String,
        what: String,
        parse: F,
    ) -> Result<Vec<String>, RegistryError>
    where
        F: Fn(&[u8]) -> Result<Vec<String>, serde_json::Error>,
    {
        let mut items = Vec::new();
        let mut next = Some(first);
        let mut seen = std::collections::HashSet::new();
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                tracing::warn!(%what, "registry kept sending pages; stopping the listing at {MAX_PAGES}");
                break;
            }
            let response = self
                .send(Request::new(
                    Method::GET,
                    kind,
                    url.clone(),
                    scope.clone(),
                    what.clone(),
                ))
                .await?;
            if !response.status().is_success() {
                return Err(self.unexpected(response, what).await);
            }
            let link = response
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body = self.read_body(response, MAX_PAGE_BYTES, &what).await?;
            let page = parse(&body).map_err(|e| RegistryError::InvalidResponse {
                what: what.clone(),
                reason: e.to_string(),
            })?;
            // Some registries honour `n` but send no `Link`: a full page then means "ask again after the last item".
            next = link.or_else(|| match page.last() {
                Some(last) if page.len() == self.inner.config.page_size as usize => {
                    Some(with_last(&url, last))
                }
                _ => None,
            });
            // A page that adds nothing new ends the walk: this covers a repeated link and a
            // registry that ignores `last`, without trusting either to stop on its own.
            let before = items.len();
            for item in page {
                if seen.insert(item.clone()) {
                    items.push(item);
                }
            }
            if items.len() == before {
                break;
            }
        }
        Ok(items)
    }
}

/// `url` with its `last` query parameter set to `last`.
fn with_last(url: &str, last: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("last="))
        .map(str::to_string)
        .collect();
    pairs.push(format!(
        "last={}",
        url::form_urlencoded::byte_serialize(last.as_bytes()).collect::<String>()
    ));
    format!("{path}?{}", pairs.join("&"))
}

/// The target of a `Link: <…>; rel="next"` header, as a path on the same registry.
pub(super) fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        if !is_next {
            return None;
        }
        // Absolute links are reduced to path and query: refcat never follows a link off the registry.
        match url::Url::parse(target) {
            Ok(u) => Some(match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            }),
            Err(_) if target.starts_with('/') => Some(target.to_string()),
            Err(_) => None,
        }
    })
}

fn parse_all<T: std::str::FromStr>(names: Vec<String>, kind: &str) -> Vec<T>
where
    T::Err: std::fmt::Display,
{
    names
        .into_iter()
        .filter_map(|n| match n.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(%kind, error = %e, "registry listed a name refcat cannot use; skipping it");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn follows_only_next_links_on_the_same_registry() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=b&n=2>; rel="next""#),
            Some("/v2/_catalog?last=b&n=2".into())
        );
        assert_eq!(
            next_link(r#"<http://evil.example/v2/x/tags/list?n=1>; rel="next""#),
            Some("/v2/x/tags/list?n=1".into())
        );
        assert_eq!(next_link(r#"</v2/a>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }
}
