//! Downloads from a tag's page, per platform: the stored Syft JSON, SPDX and Grype
//! files byte for byte as `oras pull` writes them, and CSV of the packages and of the
//! vulnerability matches. Only what the page itself may show is offered.

use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::{query, AppState, Problem};
use crate::catalog::artifacts::stored_file;
use crate::catalog::existing::Format;
use crate::catalog::platforms::platform_manifests;
use crate::catalog::sbom::platform_packages;
use crate::catalog::vulnerabilities::{vulnerabilities, VulnerabilityQuery};
use crate::oci::Platform;
use crate::reference::{Reference, RepositoryName, Tag, Target};

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

fn attachment(name: &str, content_type: &str, body: impl Into<axum::body::Body>) -> Response {
    let disposition = format!("attachment; filename=\"{}\"", name.replace('"', ""));
    let mut response = body.into().into_response();
    let headers = response.headers_mut();
    for (key, value) in [
        (header::CONTENT_TYPE, content_type.to_string()),
        (header::CONTENT_DISPOSITION, disposition),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(key, value);
        }
    }
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
            attachment(&file.name, &file.media_type, file.bytes)
        }
        Download::PackagesCsv => {
            let (trusted, packages) =
                platform_packages(client, &repository, digest, &state.trust, &state.packages)
                    .await?;
            trusted.filter(|t| t.readable()).ok_or_else(missing)?;
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
            attachment("packages.csv", "text/csv; charset=utf-8", body)
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
            let scan = view
                .platforms
                .into_values()
                .next()
                .filter(|p| p.artifact.is_some());
            let scan = scan.ok_or_else(missing)?;
            let rows = scan.matches.into_iter().map(|m| {
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
            attachment("vulnerabilities.csv", "text/csv; charset=utf-8", body)
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
