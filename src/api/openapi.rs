//! The OpenAPI 3.1 document, generated from the view types and these route
//! declarations. The handlers route by a wildcard (names contain `/`); these functions
//! exist only to describe each logical route.
#![allow(dead_code)]

use utoipa::OpenApi;

use crate::catalog::advisory::{AdvisoryView, Affected};
use crate::catalog::aggregate::{Aggregate, AggregateData, AggregateEntry, AggregateSource};
use crate::catalog::compare::{CompareView, ConfigChange, PlatformChanges, VersionChange};
use crate::catalog::details::{DetailsView, PlatformDetails};
use crate::catalog::directory::{Directory, DirectoryQuery, ImageOverview, ImageSummary};
use crate::catalog::history::{HistoryView, Release};
use crate::catalog::provenance::{PlatformProvenance, Provenance, ProvenanceView};
use crate::catalog::sbom::{Package, SbomPlatform, SbomQuery, SbomView};
use crate::catalog::tags::{SkippedTag, TagEntry, TagPlatform, TagsQuery, TagsView};
use crate::catalog::vulnerabilities::{
    MatchOrder, VulnerabilitiesView, VulnerabilityEntry, VulnerabilityPlatform, VulnerabilityQuery,
};
use crate::scan::report::{Match, Severity};

/// An RFC 9457 problem.
#[derive(utoipa::ToSchema)]
pub struct ProblemDoc {
    /// Always `about:blank`.
    r#type: String,
    /// A short summary.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong.
    detail: String,
}

/// The answers every view can give besides its 200.
#[derive(utoipa::IntoResponses)]
pub enum ViewErrors {
    /// The client already has this version (If-None-Match).
    #[response(status = 304)]
    NotModified,
    /// A bad name, tag, digest or parameter.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(ProblemDoc),
    /// No such repository, tag, digest or platform.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(ProblemDoc),
    /// The registry refused or answered nonsense.
    #[response(status = 502, content_type = "application/problem+json")]
    BadGateway(ProblemDoc),
    /// The registry is unreachable or failing; retry after `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(ProblemDoc),
}

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "refcat catalog",
        description = "A container catalog read live from an OCI registry: tags, configs, and the signed SBOM and vulnerability referrers refcat publish attached. `{name}` is a repository path and may contain `/`."
    ),
    paths(
        provenance,
        history,
        directory,
        overview,
        tags,
        details,
        sbom,
        vulnerabilities,
        release_details,
        release_sbom,
        release_vulnerabilities,
        aggregate,
        advisory,
        compare,
        healthz,
        readyz
    ),
    components(schemas(
        ProvenanceView,
        PlatformProvenance,
        Provenance,
        HistoryView,
        Release,
        Directory,
        ImageSummary,
        ImageOverview,
        Aggregate,
        AggregateData,
        AggregateEntry,
        AggregateSource,
        TagsView,
        TagEntry,
        TagPlatform,
        SkippedTag,
        DetailsView,
        PlatformDetails,
        SbomView,
        SbomPlatform,
        Package,
        VulnerabilitiesView,
        VulnerabilityPlatform,
        VulnerabilityEntry,
        MatchOrder,
        Match,
        Severity,
        AdvisoryView,
        Affected,
        CompareView,
        PlatformChanges,
        VersionChange,
        ConfigChange,
        ProblemDoc
    ))
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[utoipa::path(get, path = "/v1/images", params(DirectoryQuery), responses(
    (status = 200, body = Directory), ViewErrors))]
fn directory() {}

#[utoipa::path(get, path = "/v1/images/{name}", params(("name" = String, Path, description = "Repository path", example = "fixtures/debian", max_length = 255, pattern = "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")), responses(
    (status = 200, body = ImageOverview), ViewErrors))]
fn overview() {}

#[utoipa::path(get, path = "/v1/images/{name}/tags", params(("name" = String, Path, description = "Repository path", example = "fixtures/debian", max_length = 255, pattern = "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"), TagsQuery), responses(
    (status = 200, body = TagsView, headers(("Link" = String, description = "The first, previous, next and last pages (`rel` first, prev, next, last)"))), ViewErrors))]
fn tags() {}

#[utoipa::path(get, path = "/v1/images/{name}/details/{tag}", params(("name" = String, Path, description = "Repository path", example = "fixtures/debian", max_length = 255, pattern = "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"), ("tag" = String, Path, example = "12", pattern = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")), responses(
    (status = 200, body = DetailsView), ViewErrors))]
fn details() {}

#[utoipa::path(get, path = "/v1/images/{name}/sbom/{tag}", params(("name" = String, Path, description = "Repository path", example = "fixtures/debian", max_length = 255, pattern = "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"), ("tag" = String, Path, example = "12", pattern = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"), SbomQuery), responses(
    (status = 200, body = SbomView), ViewErrors))]
fn sbom() {}

#[utoipa::path(get, path = "/v1/images/{name}/vulnerabilities/{tag}", params(("name" = String, Path, description = "Repository path", example = "fixtures/debian", max_length = 255, pattern = "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"), ("tag" = String, Path, example = "12", pattern = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"), VulnerabilityQuery), responses(
    (status = 200, body = VulnerabilitiesView), ViewErrors))]
fn vulnerabilities() {}

#[utoipa::path(get, path = "/v1/images/{name}/releases/{digest}/details", params(("name" = String, Path, description = "Repository path", example = "fixtures/debian", max_length = 255, pattern = "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"), ("digest" = String, Path, description = "Manifest or index digest", pattern = "^sha256:[a-f0-9]{64}$")), responses(
    (status = 200, body = DetailsView), ViewErrors))]
fn release_details() {}

#[utoipa::path(get, path = "/v1/images/{name}/releases/{digest}/sbom", params(("name" = String, Path, description = "Repository path", example = "fixtures/debian", max_length = 255, pattern = "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"), ("digest" = String, Path, description = "Manifest or index digest", pattern = "^sha256:[a-f0-9]{64}$"), SbomQuery), responses(
    (status = 200, body = SbomView), ViewErrors))]
fn release_sbom() {}

#[utoipa::path(get, path = "/v1/images/{name}/releases/{digest}/vulnerabilities", params(("name" = String, Path, description = "Repository path", example = "fixtures/debian", max_length = 255, pattern = "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"), ("digest" = String, Path, description = "Manifest or index digest", pattern = "^sha256:[a-f0-9]{64}$"), VulnerabilityQuery), responses(
    (status = 200, body = VulnerabilitiesView), ViewErrors))]
fn release_vulnerabilities() {}

#[utoipa::path(get, path = "/v1/images/{name}/history/{stream}", params(("name" = String, Path, description = "Repository path", example = "fixtures/debian", max_length = 255, pattern = "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"), ("stream" = String, Path, description = "The floating tag S; its releases are the digests of S, S-… and S.…", example = "12", pattern = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")), responses(
    (status = 200, body = HistoryView), ViewErrors))]
fn history() {}

#[utoipa::path(get, path = "/v1/images/{name}/provenance/{tag}", params(("name" = String, Path, description = "Repository path", example = "fixtures/debian", max_length = 255, pattern = "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"), ("tag" = String, Path, example = "12", pattern = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")), responses(
    (status = 200, body = ProvenanceView), ViewErrors))]
fn provenance() {}

#[utoipa::path(get, path = "/v1/vulnerabilities", responses(
    (status = 200, body = Aggregate), ViewErrors))]
fn aggregate() {}

#[utoipa::path(get, path = "/v1/vulnerabilities/{id}", params(("id" = String, Path, description = "A vulnerability id as grype names it", example = "CVE-2024-2511", max_length = 128, pattern = "^[A-Za-z0-9_.:-]{1,128}$")), responses(
    (status = 200, body = AdvisoryView), ViewErrors))]
fn advisory() {}

#[utoipa::path(get, path = "/v1/images/{name}/compare/{from}...{to}", params(("name" = String, Path, description = "Repository path", example = "fixtures/debian", max_length = 255, pattern = "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"), ("from" = String, Path, description = "The earlier tag or digest", example = "12", pattern = "^([A-Za-z0-9_][A-Za-z0-9_-]{0,127}|sha256:[a-f0-9]{64})$"), ("to" = String, Path, description = "The later tag or digest", example = "bookworm", pattern = "^([A-Za-z0-9_][A-Za-z0-9_-]{0,127}|sha256:[a-f0-9]{64})$")), responses(
    (status = 200, body = CompareView), ViewErrors))]
fn compare() {}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is up", body = String, content_type = "text/plain")))]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "The registry answers", body = String, content_type = "text/plain"),
    (status = 502, body = ProblemDoc, content_type = "application/problem+json"),
    (status = 503, body = ProblemDoc, content_type = "application/problem+json")))]
fn readyz() {}

#[cfg(test)]
mod tests {
    #[test]
    fn the_architecture_filter_documents_the_names_it_takes() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let parameters = doc["paths"]["/v1/images"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let architecture = parameters
            .iter()
            .find(|p| p["name"] == "architecture")
            .unwrap();
        let pattern = architecture["schema"]["pattern"].as_str().unwrap();
        let names: Vec<&str> = pattern
            .trim_start_matches("^(")
            .trim_end_matches(")$")
            .split('|')
            .collect();
        assert_eq!(names, crate::oci::ARCHITECTURES);
    }
}
