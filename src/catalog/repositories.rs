//! Which repositories refcat covers: every one the registry's `_catalog` lists, or those
//! the user names, globs allowed (`team/*`). GHCR and Docker Hub have no `_catalog` and
//! Harbor keeps it for admins, so a selection of plain names never asks for it; a glob
//! needs it, or names learned along the way: the worker learns them from webhooks, and
//! stores what it found, signed, as `refcat-repositories` beside the catalog aggregate,
//! where `backfill` and `serve` read it when `_catalog` is refused.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::stored::StoredDocument;
use super::CatalogError;
use crate::media_types::REPOSITORY_LIST;
use crate::reference::{ReferenceError, RepositoryName, REPOSITORIES_TAG};
use crate::registry::{Client, RegistryError};
use crate::trust::Trust;

/// A repository name, or a glob over names: `*` and `?` stay within one path component,
/// `**` crosses them (`team/**` is everything under `team/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepositoryPattern {
    /// One repository.
    Name(RepositoryName),
    /// Every repository the glob matches.
    Glob(String),
}

impl FromStr for RepositoryPattern {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if !text.contains(['*', '?']) {
            return text.parse().map(RepositoryPattern::Name);
        }
        // A glob is a name with wildcards in it: the rest must be what a name may hold.
        text.replace(['*', '?'], "a")
            .parse::<RepositoryName>()
            .map(|_| RepositoryPattern::Glob(text.to_string()))
    }
}

impl std::fmt::Display for RepositoryPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepositoryPattern::Name(name) => name.fmt(f),
            RepositoryPattern::Glob(glob) => f.write_str(glob),
        }
    }
}

impl RepositoryPattern {
    /// Whether `name` is this repository or matches this glob.
    pub fn matches(&self, name: &RepositoryName) -> bool {
        match self {
            RepositoryPattern::Name(n) => n == name,
            RepositoryPattern::Glob(glob) => {
                glob_matches(glob.as_bytes(), name.as_str().as_bytes())
            }
        }
    }
}

fn glob_matches(glob: &[u8], name: &[u8]) -> bool {
    glob_matches_counting(glob, name, &mut 0)
}

/// [`glob_matches`], adding to `steps` one per pair of glob and name positions it
/// decides. Each pair is decided once, from the ends backwards, so a glob with several
/// `**` costs glob × name steps; trying every split of the name at every `**` instead
/// grows exponentially with their number.
fn glob_matches_counting(glob: &[u8], name: &[u8], steps: &mut usize) -> bool {
    // matched[i * width + j]: whether glob[i..] matches name[j..].
    let width = name.len() + 1;
    let mut matched = vec![false; (glob.len() + 1) * width];
    matched[glob.len() * width + name.len()] = true;
    for i in (0..glob.len()).rev() {
        for j in (0..=name.len()).rev() {
            *steps += 1;
            let at = |i: usize, j: usize| matched[i * width + j];
            let next = name.get(j).copied();
            let within = next.is_some_and(|b| b != b'/');
            let decided = match (glob[i], glob.get(i + 1)) {
                (b'*', Some(b'*')) => at(i + 2, j) || (next.is_some() && at(i, j + 1)),
                (b'*', _) => at(i + 1, j) || (within && at(i, j + 1)),
                (b'?', _) => within && at(i + 1, j + 1),
                (c, _) => next == Some(c) && at(i + 1, j + 1),
            };
            matched[i * width + j] = decided;
        }
    }
    matched[0]
}

/// The repositories of a selection, as far as they could be found; only
/// [`Repositories::list`] makes one.
#[derive(Debug)]
pub struct Listed {
    repositories: Vec<RepositoryName>,
    unexpanded: Option<(Vec<RepositoryPattern>, RegistryError)>,
}

impl Listed {
    /// The repositories, in `_catalog`'s order, then named and learned ones.
    pub fn repositories(&self) -> &[RepositoryName] {
        &self.repositories
    }

    /// [`Listed::repositories`], owned.
    pub fn into_repositories(self) -> Vec<RepositoryName> {
        self.repositories
    }

    /// Globs that no listing could expand: `_catalog` was refused, with this error.
    pub fn unexpanded(&self) -> Option<&(Vec<RepositoryPattern>, RegistryError)> {
        self.unexpanded.as_ref()
    }

    /// Both parts, owned.
    pub fn into_parts(
        self,
    ) -> (
        Vec<RepositoryName>,
        Option<(Vec<RepositoryPattern>, RegistryError)>,
    ) {
        (self.repositories, self.unexpanded)
    }
}

/// Which repositories refcat covers, less the one where the catalog aggregate is stored.
/// Cheap to clone; clones share what was learned.
#[derive(Clone, Debug)]
pub struct Repositories {
    patterns: Arc<Vec<RepositoryPattern>>,
    aggregate: Option<RepositoryName>,
    learned: Arc<Mutex<BTreeSet<RepositoryName>>>,
    /// Whose signature a stored repository list must carry.
    trust: Trust,
}

/// The stored repository list's document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryList {
    /// Every repository found, sorted.
    pub repositories: BTreeSet<String>,
}

impl RepositoryList {
    /// The document of what `listed` found.
    pub fn of(listed: &Listed) -> Self {
        RepositoryList {
            repositories: listed
                .repositories
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

impl Repositories {
    /// Every repository `_catalog` lists when `patterns` is empty, else those the
    /// patterns select; never `aggregate`, where the worker stores the catalog aggregate.
    /// A stored repository list counts only as `trust` lets it (with keys, only when its
    /// signature verifies).
    pub fn new(
        patterns: Vec<RepositoryPattern>,
        aggregate: Option<RepositoryName>,
        trust: Trust,
    ) -> Self {
        Repositories {
            patterns: Arc::new(patterns),
            aggregate,
            learned: Default::default(),
            trust,
        }
    }

    /// Every repository `_catalog` lists, with no stored list or aggregate: what a bare
    /// catalog reads.
    pub fn every(trust: Trust) -> Self {
        Repositories::new(Vec::new(), None, trust)
    }

    /// Whether a glob selects repositories: then a listing is needed, and the worker
    /// stores what it found.
    pub fn has_globs(&self) -> bool {
        self.patterns
            .iter()
            .any(|p| matches!(p, RepositoryPattern::Glob(_)))
    }

    /// The repository list stored beside the aggregate, if there is one.
    pub async fn stored(
        &self,
        client: &Client,
    ) -> Result<Option<StoredDocument<RepositoryList>>, CatalogError> {
        let Some(repository) = &self.aggregate else {
            return Ok(None);
        };
        super::stored::read(
            client,
            repository,
            REPOSITORIES_TAG,
            REPOSITORY_LIST,
            &self.trust,
        )
        .await
    }

    /// Where the catalog aggregate is stored.
    pub fn aggregate(&self) -> Option<&RepositoryName> {
        self.aggregate.as_ref()
    }

    /// Whether `name` is covered.
    pub fn covers(&self, name: &RepositoryName) -> bool {
        Some(name) != self.aggregate.as_ref()
            && (self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(name)))
    }

    /// Notes a repository seen elsewhere (a webhook): when it is covered, later listings
    /// include it even where `_catalog` is refused. Whether it is covered.
    pub fn learn(&self, name: &RepositoryName) -> bool {
        let covered = self.covers(name);
        if covered {
            self.learned
                .lock()
                .expect("learned lock")
                .insert(name.clone());
        }
        covered
    }

    /// The covered repositories. Plain names need no `_catalog`; an empty selection
    /// fails when `_catalog` is refused, saying what to pass instead; globs it leaves
    /// unexpanded are reported in [`Listed::unexpanded`].
    pub async fn list(&self, client: &Client) -> Result<Listed, CatalogError> {
        let named = self.patterns.iter().filter_map(|p| match p {
            RepositoryPattern::Name(n) => Some(n.clone()),
            RepositoryPattern::Glob(_) => None,
        });
        let learned: Vec<RepositoryName> = self
            .learned
            .lock()
            .expect("learned lock")
            .iter()
            .cloned()
            .collect();
        let globs: Vec<RepositoryPattern> = self
            .patterns
            .iter()
            .filter(|p| matches!(p, RepositoryPattern::Glob(_)))
            .cloned()
            .collect();
        let mut out = Vec::new();
        let mut unexpanded = None;
        if self.patterns.is_empty() || !globs.is_empty() {
            match Box::pin(client.list_repositories()).await {
                Ok(all) => out.extend(all.into_iter().filter(|r| self.covers(r))),
                Err(e) if refuses_listing(&e) && !self.patterns.is_empty() => {
                    // What the worker found before, from webhooks, stands in.
                    // One the reader may not read is no list (the names are not theirs).
                    // Boxed, as are the other large futures of views that many await.
                    let found = unreadable_as_none(Box::pin(self.stored(client)).await)?.flatten();
                    match found {
                        Some(list) => {
                            let names = list
                                .document
                                .get()
                                .repositories
                                .iter()
                                .filter_map(|n| n.parse().ok());
                            out.extend(names.filter(|r| self.covers(r)));
                        }
                        None => unexpanded = Some((globs, e)),
                    }
                }
                Err(e) if refuses_listing(&e) => {
                    return Err(CatalogError::NoCatalog(e));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut seen: BTreeSet<RepositoryName> = out.iter().cloned().collect();
        for name in named.chain(learned) {
            if self.covers(&name) && seen.insert(name.clone()) {
                out.push(name);
            }
        }
        Ok(Listed {
            repositories: out,
            unexpanded,
        })
    }
}

/// A view of one repository, or `None` when the repository is gone or not the reader's
/// to read: views over many repositories leave such ones out. Refused credentials stay
/// an error (the reader must be asked for others).
pub fn unreadable_as_none<T>(view: Result<T, CatalogError>) -> Result<Option<T>, CatalogError> {
    match view {
        Ok(view) => Ok(Some(view)),
        Err(CatalogError::Registry(
            RegistryError::Forbidden { .. } | RegistryError::NotFound { .. },
        )) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `_catalog` answered that refcat may not list, or that there is no listing:
/// Docker Hub says 401, Harbor 401/403 for non-admins, GHCR 404.
fn refuses_listing(e: &RegistryError) -> bool {
    matches!(
        e,
        RegistryError::Unauthorized { .. }
            | RegistryError::Forbidden { .. }
            | RegistryError::NotFound { .. }
            | RegistryError::Status {
                status: 400 | 405,
                ..
            }
    )
}

/// Reads a repositories file: one name or glob a line; blank lines and `#` comments are
/// skipped. Errors name the line.
pub fn parse_list(text: &str, source: &str) -> Result<Vec<RepositoryPattern>, String> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.split('#').next().unwrap_or_default().trim()))
        .filter(|(_, line)| !line.is_empty())
        .map(|(n, line)| line.parse().map_err(|e| format!("{source}:{n}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> RepositoryName {
        n.parse().unwrap()
    }

    #[test]
    fn globs_stay_within_a_component_unless_doubled() {
        let glob = |g: &str| g.parse::<RepositoryPattern>().unwrap();
        assert!(glob("team/*").matches(&name("team/app")));
        assert!(!glob("team/*").matches(&name("team/app/sub")));
        assert!(!glob("team/*").matches(&name("team")));
        assert!(glob("team/**").matches(&name("team/app/sub")));
        assert!(glob("*/app").matches(&name("team/app")));
        assert!(glob("team/app-?").matches(&name("team/app-1")));
        assert!(!glob("team/app-?").matches(&name("team/app-12")));
        assert!(glob("fixtures/alpine").matches(&name("fixtures/alpine")));
        assert!(matches!(glob("team/app"), RepositoryPattern::Name(_)));
        assert!(glob("**/app").matches(&name("a/b/app")));
        assert!(glob("a/**/c/*").matches(&name("a/b/x/c/d")));
        assert!(!glob("a/**/c/*").matches(&name("a/b/x/c/d/e")));
        assert!(glob("***").matches(&name("a/b")));
    }

    #[test]
    fn many_double_stars_cost_glob_times_name_steps() {
        // Eight `**` before a letter the name lacks: every way of splitting the name
        // among them fails, and there are more than 10^12 of them.
        let pattern = "a**a**a**a**a**a**a**a**b";
        let long = "a".repeat(200);
        let mut steps = 0;
        assert!(!glob_matches_counting(
            pattern.as_bytes(),
            long.as_bytes(),
            &mut steps
        ));
        assert!(steps <= (pattern.len() + 1) * (long.len() + 1), "{steps}");
        let glob = pattern.parse::<RepositoryPattern>().unwrap();
        assert!(!glob.matches(&name(&long)));
        assert!(glob.matches(&name(&format!("{long}b"))));
        for bad in ["Team/*", "team//*", "../*", "team/*/", ""] {
            assert!(bad.parse::<RepositoryPattern>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_aggregate_repository_and_what_no_pattern_names_are_not_covered() {
        let repositories = Repositories::new(
            vec!["team/*".parse().unwrap()],
            Some(name("refcat/catalog")),
            Trust::show_unverified(),
        );
        assert!(repositories.covers(&name("team/app")));
        assert!(!repositories.covers(&name("other/app")));
        assert!(!repositories.learn(&name("other/app")));
        assert!(repositories.learn(&name("team/new")));
        let all = Repositories::new(
            Vec::new(),
            Some(name("refcat/catalog")),
            Trust::show_unverified(),
        );
        assert!(all.covers(&name("anything")));
        assert!(!all.covers(&name("refcat/catalog")));
    }

    #[test]
    fn a_repositories_file_names_the_bad_line() {
        let parsed = parse_list("# ours\nteam/app\n\nteam/*  # and the rest\n", "f").unwrap();
        assert_eq!(parsed.len(), 2);
        let err = parse_list("team/app\nBad Name\n", "repos.txt").unwrap_err();
        assert!(err.starts_with("repos.txt:2:"), "{err}");
    }
}
