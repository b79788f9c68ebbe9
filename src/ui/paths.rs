//! Page paths under `/images/`. A repository name may contain `/`, so the page is
//! read from the end: `{name}/tags/{tag}` is a tag, `{name}/compare/{a}...{b}` two
//! releases compared (`{name}/compare?from=a&to=b` is the form's way there), anything
//! else a repository.

use super::pages::download::Download;
use crate::reference::{RepositoryName, Tag, Target};
use crate::web::compared;
use crate::web::Problem;

/// What a path under `/images/` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Page {
    /// A repository's overview.
    Overview(RepositoryName),
    /// One tag: specifications, vulnerabilities, SBOM.
    Tag(RepositoryName, Tag),
    /// A file to download from a tag's page.
    Download(RepositoryName, Tag, Download),
    /// Two releases compared.
    Compare(RepositoryName, Target, Target),
    /// A stream's releases.
    History(RepositoryName, Tag),
    /// A tag's provenance and referrers tree.
    Artifacts(RepositoryName, Tag),
    /// The compare form's answer, before it is sent to its canonical path.
    CompareForm(RepositoryName),
}

impl Page {
    /// Its name in metrics: one of a fixed few.
    pub fn view(&self) -> &'static str {
        match self {
            Page::Overview(_) => "page_overview",
            Page::Tag(..) => "page_tag",
            Page::Download(..) => "page_download",
            Page::Compare(..) | Page::CompareForm(_) => "page_compare",
            Page::History(..) => "page_history",
            Page::Artifacts(..) => "page_artifacts",
        }
    }
}

/// Reads the path after `/images/`.
pub fn parse(path: &str) -> Result<Page, Problem> {
    let path = path.trim_end_matches('/');
    let name = |n: &str| {
        n.parse::<RepositoryName>()
            .map_err(|e| Problem::not_found(format!("no repository {n:?}: {e}")))
    };
    if let Some(repository) = path.strip_suffix("/compare") {
        return Ok(Page::CompareForm(name(repository)?));
    }
    if let Some((repository, range)) = path.rsplit_once("/compare/") {
        let (from, to) = compared(range)?;
        return Ok(Page::Compare(name(repository)?, from, to));
    }
    if let Some((rest, file)) = path.rsplit_once("/download/") {
        let what = Download::parse(file)
            .ok_or_else(|| Problem::not_found(format!("no download {file:?}")))?;
        if let Page::Tag(repository, tag) = parse(rest)? {
            return Ok(Page::Download(repository, tag, what));
        }
        return Err(Problem::not_found("downloads belong to a tag"));
    }
    if let Some(rest) = path.strip_suffix("/artifacts") {
        if let Ok(Page::Tag(repository, tag)) = parse(rest) {
            return Ok(Page::Artifacts(repository, tag));
        }
    }
    if let Some((repository, stream)) = path.rsplit_once("/history/") {
        let stream = stream
            .parse::<Tag>()
            .map_err(|e| Problem::not_found(format!("no stream {stream:?}: {e}")))?;
        return Ok(Page::History(name(repository)?, stream));
    }
    match path.rsplit_once("/tags/") {
        Some((repository, tag)) => {
            let tag = tag
                .parse::<Tag>()
                .map_err(|e| Problem::not_found(format!("no tag {tag:?}: {e}")))?;
            Ok(Page::Tag(name(repository)?, tag))
        }
        None => Ok(Page::Overview(name(path)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pages_from_the_end() {
        assert_eq!(
            parse("fixtures/alpine/tags/3.19").unwrap(),
            Page::Tag("fixtures/alpine".parse().unwrap(), "3.19".parse().unwrap())
        );
        assert_eq!(
            parse("a/b/c/").unwrap(),
            Page::Overview("a/b/c".parse().unwrap())
        );
        assert_eq!(
            parse("a/compare/3.19...3.19.1").unwrap(),
            Page::Compare(
                "a".parse().unwrap(),
                Target::Tag("3.19".parse().unwrap()),
                Target::Tag("3.19.1".parse().unwrap())
            )
        );
        assert_eq!(
            parse("a/compare").unwrap(),
            Page::CompareForm("a".parse().unwrap())
        );
        assert_eq!(parse("a/compare/x").unwrap_err().status(), 400);
        assert_eq!(parse("../etc").unwrap_err().status(), 404);
        assert_eq!(parse("x/tags/..").unwrap_err().status(), 404);
    }
}
