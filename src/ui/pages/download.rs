//! Downloads from a tag's page, per platform: the stored Syft JSON, SPDX and Grype
//! files byte for byte as `oras pull` writes them, and CSV of the packages and of the
//! vulnerability matches. Only what the page itself may show is offered.

use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::artifact::Format;
use crate::catalog::artifacts::stored_file;
use crate::catalog::platforms::platform_manifests;
use crate::catalog::sbom::platform_packages;
use crate::catalog::vulnerabilities::{vulnerabilities, VulnerabilityQuery};
use crate::oci::Platform;
use crate::reference::{Reference, RepositoryName, Tag, Target};
use crate::trust::Verdict;
use crate::web::{query, AppState, Problem};

/// What can be downloaded, by its file name in the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Download {
    /// A stored artifact's file.
    Stored(Format),
    /// The SBOM's packages as CSV.
    PackagesCsv,
    /// The vulnerability matches as CSV.
    VulnerabilitiesCsv,
}

impl Download {
    /// The download named `name`.
    pub fn parse(name: &str) -> Option<Download> {
        Some(match name {
            "sbom.syft.json" => Download::Stored(Format::SyftJson),
            "sbom.spdx.json" => Download::Stored(Format::SpdxJson),
            "vulnerabilities.grype.json" => Download::Stored(Format::GrypeJson),
            "packages.csv" => Download::PackagesCsv,
            "vulnerabilities.csv" => Download::VulnerabilitiesCsv,
            _ => return None,
        })
    }

    /// The file name the download is saved under, and its media type: fixed by the
    /// route, never taken from what a pusher wrote into a stored artifact.
    fn file(self) -> (&'static str, &'static str) {
        match self {
            Download::Stored(Format::SyftJson) => ("sbom.syft.json", "application/json"),
            Download::Stored(Format::SpdxJson) => ("sbom.spdx.json", "application/spdx+json"),
            Download::Stored(Format::GrypeJson) => {
                ("vulnerabilities.grype.json", "application/json")
            }
            Download::PackagesCsv => ("packages.csv", "text/csv; charset=utf-8"),
            Download::VulnerabilitiesCsv => ("vulnerabilities.csv", "text/csv; charset=utf-8"),
        }
    }

    /// Every download, by name, for the page's links.
    pub const NAMES: [&'static str; 5] = [
        "sbom.syft.json",
        "sbom.spdx.json",
        "vulnerabilities.grype.json",
        "packages.csv",
        "vulnerabilities.csv",
    ];
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Form {
    #[serde(default)]
    platform: String,
}

/// One CSV field, quoted when it must be, and never read as a formula by a
/// spreadsheet.
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

fn csv(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut out = header.join(",");
    out.push_str("\r\n");
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| field(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A file the browser saves and never renders: its name and type are the route's own,
/// and a sandbox CSP stops it from running anything should it be opened anyway.
fn attachment(what: Download, verdict: &Verdict, body: impl Into<axum::body::Body>) -> Response {
    let (name, content_type) = what.file();
    let mut response = body.into().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let disposition = format!("attachment; filename=\"{name}\"");
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).expect("the route's file names are plain ASCII"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    // Whether what is saved was checked: `not-checked` from a catalog without keys.
    let verdict = match verdict {
        Verdict::Verified { .. } => "verified",
        _ => "not-checked",
    };
    headers.insert("refcat-signature", HeaderValue::from_static(verdict));
    response
}

/// Answers the download `what` of `repository:tag` for the platform in `uri`.
pub async fn respond(
    state: &AppState,
    repository: RepositoryName,
    tag: Tag,
    what: Download,
    uri: &Uri,
) -> Result<Response, Problem> {
    let form: Form = query(uri)?;
    let platform: Platform = form
        .platform
        .parse()
        .map_err(|e| Problem::bad_request(format!("platform: {e}")))?;
    let client = &state.client;
    let reference = Reference {
        registry: client.registry().to_string(),
        repository: repository.clone(),
        target: Target::Tag(tag),
    };
    let subject = platform_manifests(client, &reference, Some(&platform))
        .await
        .map_err(crate::catalog::CatalogError::from)?
        .into_iter()
        .next()
        .ok_or_else(|| Problem::not_found(format!("{reference} has no {platform}")))?;
    let digest = &subject.descriptor.digest;
    let missing = || {
        Problem::not_found(format!(
            "{reference} has no result to download for {platform}"
        ))
    };
    Ok(match what {
        Download::Stored(format) => {
            let file = stored_file(client, &repository, digest, format, &state.trust)
                .await?
                .ok_or_else(missing)?;
            attachment(what, &file.verdict(), file.get().clone())
        }
        Download::PackagesCsv => {
            let (judged, packages) =
                platform_packages(client, &repository, digest, &state.trust, &state.packages)
                    .await?;
            let packages = packages.ok_or_else(missing)?;
            let verdict = judged.map(|j| j.verdict().clone()).ok_or_else(missing)?;
            let rows = packages.iter().map(|p| {
                vec![
                    p.name.clone(),
                    p.version.clone(),
                    p.package_type.clone(),
                    p.purl.clone().unwrap_or_default(),
                    p.licenses.join(" "),
                ]
            });
            let body = csv(&["name", "version", "type", "purl", "licenses"], rows);
            attachment(what, &verdict, body)
        }
        Download::VulnerabilitiesCsv => {
            let pinned = Reference {
                target: Target::Digest(digest.clone()),
                ..reference.clone()
            };
            let view = vulnerabilities(
                client,
                &pinned,
                &VulnerabilityQuery::default(),
                &state.trust,
            )
            .await?;
            let scan = view.platforms.into_values().next().ok_or_else(missing)?;
            let (matches, verdict) = match (scan.matches, scan.signature) {
                (Some(matches), Some(verdict)) => (matches, verdict),
                _ => return Err(missing()),
            };
            let rows = matches.into_iter().map(|m| {
                vec![
                    m.matched.id,
                    m.matched.severity.as_str().to_string(),
                    m.matched.package,
                    m.matched.version,
                    m.matched.package_type,
                    m.matched.fix_versions.join(" "),
                    m.matched.fix_state,
                    m.first_seen.unwrap_or_default(),
                ]
            });
            let body = csv(
                &[
                    "id",
                    "severity",
                    "package",
                    "version",
                    "type",
                    "fixed_in",
                    "fix_state",
                    "first_seen",
                ],
                rows,
            );
            attachment(what, &verdict, body)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(field("1.2.3"), "1.2.3");
    }
}
