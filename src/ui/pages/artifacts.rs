//! `/images/{name}/tags/{tag}/artifacts`: per platform, the build provenance (from the
//! view `/v1/images/{name}/provenance/{tag}` serves) and every referrer in the shape
//! `oras discover` prints, with a Grype result made with an older DB than the newest
//! signed one marked stale.

use askama::Template;

use super::Layout;
use crate::artifact::annotations::{CREATED, GRYPE_DB_BUILT};
use crate::catalog::provenance::{self, Provenance};
use crate::catalog::referrers_tree::{referrers_tree, ReferrerNode, TreeOptions};
use crate::catalog::vulnerabilities::{vulnerabilities, VulnerabilityQuery};
use crate::catalog::CatalogError;
use crate::media_types::GRYPE_JSON;
use crate::reference::{Reference, RepositoryName, Tag, Target};
use crate::ui::format;
use crate::web::{AppState, Problem};

/// One line of the referrers tree.
struct Line {
    depth: usize,
    artifact_type: String,
    digest: String,
    created: String,
    stale: bool,
}

struct Platform {
    platform: String,
    provenance: Option<Provenance>,
    signature: Option<(&'static str, String)>,
    reason: String,
    tree: Vec<Line>,
}

#[derive(Template)]
#[template(path = "artifacts.html", config = "src/ui/askama.toml")]
struct ArtifactsPage {
    layout: Layout,
    name: String,
    tag_page: String,
    tag: String,
    platforms: Vec<Platform>,
}

/// The tree below `node`, depth first, as lines; a Grype result built with a DB older
/// than `current` is stale.
fn lines(node: &ReferrerNode, depth: usize, current: Option<&str>, out: &mut Vec<Line>) {
    for child in &node.referrers {
        let built = child.annotations.get(GRYPE_DB_BUILT).map(String::as_str);
        out.push(Line {
            depth,
            artifact_type: child
                .artifact_type
                .clone()
                .unwrap_or_else(|| child.media_type.clone()),
            digest: child.digest.to_string(),
            created: child.annotations.get(CREATED).cloned().unwrap_or_default(),
            stale: child.artifact_type.as_deref() == Some(GRYPE_JSON)
                && matches!((built, current), (Some(b), Some(c)) if b < c),
        });
        lines(child, depth + 1, current, out);
    }
}

/// Renders the artifacts page of `repository:tag`.
pub async fn render(
    state: &AppState,
    repository: RepositoryName,
    tag: Tag,
) -> Result<String, Problem> {
    let client = &state.client;
    let reference = Reference {
        registry: client.registry().to_string(),
        repository: repository.clone(),
        target: Target::Tag(tag.clone()),
    };
    let every = VulnerabilityQuery::default();
    let (found, scans) = tokio::try_join!(
        Box::pin(provenance::provenance(client, &reference, &state.trust)),
        Box::pin(vulnerabilities(client, &reference, &every, &state.trust)),
    )?;
    let mut platforms = Vec::new();
    for (platform, p) in found.platforms {
        let pinned = Reference {
            target: Target::Digest(
                p.digest
                    .parse()
                    .map_err(|e| CatalogError::stored(&p.digest, e))?,
            ),
            ..reference.clone()
        };
        let tree = referrers_tree(client, &pinned, &TreeOptions::default())
            .await
            .map_err(|e| Problem::from(CatalogError::stored(pinned.to_string(), e)))?;
        let current = scans
            .platforms
            .get(&platform)
            .and_then(|s| s.db_built.clone());
        let mut tree_lines = Vec::new();
        lines(&tree, 0, current.as_deref(), &mut tree_lines);
        platforms.push(Platform {
            signature: p
                .provenance
                .as_ref()
                .and_then(|v| v.signature.as_ref())
                .map(|v| format::verdict(Some(v))),
            reason: p.reason.unwrap_or_default(),
            provenance: p.provenance,
            tree: tree_lines,
            platform,
        });
    }
    Ok(super::render(&ArtifactsPage {
        layout: Layout::new(format!("{repository}:{tag} artifacts"), "images")
            .checked_by(&state.trust),
        name: repository.to_string(),
        tag_page: format!("{}/tags/{tag}", format::image_path(repository.as_str())),
        tag: tag.to_string(),
        platforms,
    }))
}
