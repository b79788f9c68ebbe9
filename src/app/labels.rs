//! The label of each route in `/metrics`: a small, fixed set of values, read by the
//! API's and the pages' own path parsers.

use crate::api::routes::{ImageRoute, View};
use crate::reference::Target;

/// The view a path belongs to: a small, fixed set of label values. Paths under
/// `/v1/images/` and `/images/` are read by the routers' own parsers, so a label always
/// names the view that answered; a path they refuse is `other`.
pub(super) fn view_of(path: &str) -> &'static str {
    let one_segment = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    };
    match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/v1/images" => "directory",
        "/v1/vulnerabilities" => "aggregate",
        "/v1/openapi.json" => "openapi",
        "/" => "page_directory",
        "/vulnerabilities" => "page_vulnerabilities",
        p if p.starts_with("/v1/docs") => "docs",
        _ if one_segment("/v1/vulnerabilities/") => "advisory",
        _ if one_segment("/vulnerabilities/") => "page_advisory",
        _ if one_segment("/assets/") => "assets",
        p => {
            if let Some(rest) = p.strip_prefix("/v1/images/") {
                image_view(rest)
            } else if let Some(rest) = p.strip_prefix("/images/") {
                crate::ui::page_view(rest)
            } else {
                "other"
            }
        }
    }
}

/// The view of a path under `/v1/images/`.
fn image_view(rest: &str) -> &'static str {
    match crate::api::routes::parse(rest) {
        Ok(ImageRoute::Overview(_)) => "overview",
        Ok(ImageRoute::Tags(_)) => "tags",
        Ok(ImageRoute::Compare(..)) => "compare",
        Ok(ImageRoute::View(view, _, Target::Tag(_))) => match view {
            View::Details => "details",
            View::Sbom => "sbom",
            View::Vulnerabilities => "vulnerabilities",
            View::History => "history",
            View::Provenance => "provenance",
        },
        // Addressed by digest: `releases/{digest}/…`.
        Ok(ImageRoute::View(..)) => "releases",
        Err(_) => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_a_fixed_set_of_views() {
        for (path, view) in [
            ("/v1/images/a/b/tags", "tags"),
            ("/v1/images/a/sbom/1", "sbom"),
            ("/v1/images/a/details/1", "details"),
            ("/v1/images/a/vulnerabilities/1", "vulnerabilities"),
            ("/v1/images/a/history/1", "history"),
            ("/v1/images/a/provenance/1", "provenance"),
            ("/v1/images/a/compare/1...2", "compare"),
            ("/v1/images/a/releases/sha256:0000000000000000000000000000000000000000000000000000000000000000/sbom", "releases"),
            ("/v1/images/a/b", "overview"),
            ("/v1/images/A", "other"),
            ("/v1/vulnerabilities/CVE-2024-1", "advisory"),
            ("/", "page_directory"),
            ("/vulnerabilities", "page_vulnerabilities"),
            ("/vulnerabilities/CVE-2024-1", "page_advisory"),
            ("/images/a/b", "page_overview"),
            ("/images/a/tags/1", "page_tag"),
            ("/images/a/tags/1/artifacts", "page_artifacts"),
            ("/images/a/history/1", "page_history"),
            ("/images/a/compare/1...2", "page_compare"),
            ("/assets/app.js", "assets"),
            ("/whatever", "other"),
        ] {
            assert_eq!(view_of(path), view, "{path}");
        }
    }
}
