//! Routing. A repository name may contain `/`, so everything under `/v1/images/` is
//! one wildcard, read from the end: the last segments name the view.
//!
//! | path | view |
//! |---|---|
//! | `/v1/images/{name}` | overview (when no view below matches) |
//! | `/v1/images/{name}/tags` | tags |
//! | `/v1/images/{name}/details/{tag}` | per-platform config |
//! | `/v1/images/{name}/sbom/{tag}` | packages |
//! | `/v1/images/{name}/vulnerabilities/{tag}` | matches |
//! | `/v1/images/{name}/history/{stream}` | releases of a stream |
//! | `/v1/images/{name}/provenance/{tag}` | SLSA provenance |
//! | `/v1/images/{name}/releases/{digest}/details\|sbom\|vulnerabilities` | digest-addressed |
//! | `/v1/images/{name}/compare/{from}...{to}` | two tags or digests compared |
//!
//! A repository whose last component is itself one of those words cannot be told
//! apart from a view of its parent; such names are not served.

use crate::reference::{Reference, RepositoryName, Tag, Target};

use crate::web::{compared, Problem};

/// What a path under `/v1/images/` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRoute {
    /// One repository's overview.
    Overview(RepositoryName),
    /// The tags of a repository.
    Tags(RepositoryName),
    /// A per-reference view.
    View(View, RepositoryName, Target),
    /// Two releases compared.
    Compare(RepositoryName, Target, Target),
}

/// The per-reference views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Per-platform config.
    Details,
    /// Packages.
    Sbom,
    /// Vulnerability matches.
    Vulnerabilities,
    /// The releases of a stream (tag-addressed only).
    History,
    /// SLSA provenance.
    Provenance,
}

impl View {
    fn parse(word: &str) -> Option<View> {
        match word {
            "details" => Some(View::Details),
            "sbom" => Some(View::Sbom),
            "vulnerabilities" => Some(View::Vulnerabilities),
            "history" => Some(View::History),
            "provenance" => Some(View::Provenance),
            _ => None,
        }
    }
}

fn repository(name: &str) -> Result<RepositoryName, Problem> {
    name.parse()
        .map_err(|e| Problem::bad_request(format!("invalid repository name: {e}")))
}

/// Reads the path after `/v1/images/`.
pub fn parse(path: &str) -> Result<ImageRoute, Problem> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let n = segments.len();
    let unknown = || Problem::not_found(format!("no view at /v1/images/{path}"));
    if n >= 2 && segments[n - 1] == "tags" {
        return Ok(ImageRoute::Tags(repository(&segments[..n - 1].join("/"))?));
    }
    if n >= 3 && segments[n - 2] == "compare" {
        let (from, to) = compared(segments[n - 1])?;
        let name = repository(&segments[..n - 2].join("/"))?;
        return Ok(ImageRoute::Compare(name, from, to));
    }
    if n >= 4 && segments[n - 3] == "releases" {
        let view = View::parse(segments[n - 1])
            .filter(|v| *v != View::History)
            .ok_or_else(unknown)?;
        let digest = crate::digest::parse(segments[n - 2])
            .map_err(|e| Problem::bad_request(format!("invalid digest: {e}")))?;
        let name = repository(&segments[..n - 3].join("/"))?;
        return Ok(ImageRoute::View(view, name, Target::Digest(digest)));
    }
    if n >= 3 {
        if let Some(view) = View::parse(segments[n - 2]) {
            let tag: Tag = segments[n - 1]
                .parse()
                .map_err(|e| Problem::bad_request(format!("invalid tag: {e}")))?;
            let name = repository(&segments[..n - 2].join("/"))?;
            return Ok(ImageRoute::View(view, name, Target::Tag(tag)));
        }
    }
    if segments.iter().any(|s| s.is_empty()) || n == 0 {
        return Err(unknown());
    }
    Ok(ImageRoute::Overview(repository(
        path.trim_end_matches('/'),
    )?))
}

/// A reference on `registry`.
pub fn reference(registry: &str, repository: RepositoryName, target: Target) -> Reference {
    Reference {
        registry: registry.to_string(),
        repository,
        target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_slashes_are_read_from_the_end() {
        assert_eq!(
            parse("fixtures/alpine/tags").unwrap(),
            ImageRoute::Tags("fixtures/alpine".parse().unwrap())
        );
        let ImageRoute::View(view, name, target) = parse("a/b/c/sbom/3.19").unwrap() else {
            panic!()
        };
        assert_eq!((view, name.as_str()), (View::Sbom, "a/b/c"));
        assert_eq!(target, Target::Tag("3.19".parse().unwrap()));
        let digest = crate::digest::sha256(b"x");
        let ImageRoute::View(view, _, target) =
            parse(&format!("a/releases/{digest}/vulnerabilities")).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (view, target),
            (View::Vulnerabilities, Target::Digest(digest))
        );
        assert_eq!(
            parse("a/unknownview/1").unwrap(),
            ImageRoute::Overview("a/unknownview/1".parse().unwrap())
        );
        assert!(parse("../x/tags").is_err());
        assert!(parse("UPPER/tags").is_err());
        assert!(parse("a/details/bad:tag").is_err());
        assert!(parse("a/releases/sha256:short/sbom").is_err());
    }
}
