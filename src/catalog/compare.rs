//! Two releases of one repository side by side, per platform both have: packages
//! added, removed and changed; vulnerabilities new, fixed and kept; config changes
//! (env, user, entrypoint, cmd, working directory, ports, labels). Each side is read
//! through the same views as its own pages, so only signed content is compared.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::details::{details, PlatformDetails};
use super::sbom::{platform_packages, Package, PackageCache};
use super::vulnerabilities::{vulnerabilities, VulnerabilityQuery};
use super::CatalogError;
use crate::reference::{Reference, RepositoryName, Target};
use crate::registry::Client;
use crate::scan::report::Match;
use crate::trust::Trust;

/// What changed from one release to another.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompareView {
    /// The repository.
    pub repository: String,
    /// The earlier side, as asked for (tag or digest).
    pub from: String,
    /// The later side.
    pub to: String,
    /// Per platform both sides have.
    pub platforms: BTreeMap<String, PlatformChanges>,
    /// Platforms only the earlier side has.
    pub removed_platforms: Vec<String>,
    /// Platforms only the later side has.
    pub added_platforms: Vec<String>,
}

/// The changes on one platform. Where either side has no SBOM (or no scan) a view may
/// show, its package (or vulnerability) changes are `null`: unknown, never "none".
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformChanges {
    /// The earlier platform manifest.
    pub from_digest: String,
    /// The later platform manifest.
    pub to_digest: String,
    /// Packages only the later side has.
    pub packages_added: Option<Vec<Package>>,
    /// Packages only the earlier side has.
    pub packages_removed: Option<Vec<Package>>,
    /// Packages both have in other versions.
    pub packages_changed: Option<Vec<VersionChange>>,
    /// Matches only the later side has.
    pub vulnerabilities_new: Option<Vec<Match>>,
    /// Matches only the earlier side has.
    pub vulnerabilities_fixed: Option<Vec<Match>>,
    /// Matches both have.
    pub vulnerabilities_kept: Option<Vec<Match>>,
    /// Config fields that differ.
    pub config: Vec<ConfigChange>,
}

/// A package whose versions differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionChange {
    /// The package name.
    pub name: String,
    /// Its type.
    pub package_type: String,
    /// Its versions on the earlier side.
    pub from: String,
    /// Its versions on the later side.
    pub to: String,
}

/// A config field that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigChange {
    /// `env`, `user`, `entrypoint`, `cmd`, `workingDir`, `exposedPorts` or `label:<key>`.
    pub field: String,
    /// The earlier value (`None`: not set).
    pub from: Option<String>,
    /// The later value.
    pub to: Option<String>,
}

/// Compares `from` with `to` in `repository`.
pub async fn compare(
    client: &Client,
    repository: &RepositoryName,
    (from, to): (Target, Target),
    trust: &Trust,
    cache: &PackageCache,
) -> Result<CompareView, CatalogError> {
    let side = |target: Target| Reference {
        registry: client.registry().to_string(),
        repository: repository.clone(),
        target,
    };
    let (a, b) = (side(from), side(to));
    let (a_side, b_side) = tokio::try_join!(
        Box::pin(read_side(client, &a, trust, cache)),
        Box::pin(read_side(client, &b, trust, cache)),
    )?;
    let mut view = CompareView {
        repository: repository.to_string(),
        from: a.target.manifest_reference(),
        to: b.target.manifest_reference(),
        platforms: BTreeMap::new(),
        removed_platforms: a_side
            .keys()
            .filter(|p| !b_side.contains_key(*p))
            .cloned()
            .collect(),
        added_platforms: b_side
            .keys()
            .filter(|p| !a_side.contains_key(*p))
            .cloned()
            .collect(),
    };
    for (platform, earlier) in &a_side {
        if let Some(later) = b_side.get(platform) {
            view.platforms
                .insert(platform.clone(), changes(earlier, later));
        }
    }
    Ok(view)
}

/// One side, per platform: its config, and its packages and matches where known.
struct Side {
    config: PlatformDetails,
    packages: Option<Vec<Package>>,
    matches: Option<Vec<Match>>,
}

async fn read_side(
    client: &Client,
    reference: &Reference,
    trust: &Trust,
    cache: &PackageCache,
) -> Result<BTreeMap<String, Side>, CatalogError> {
    let every = VulnerabilityQuery::default();
    let (configs, scans) = tokio::try_join!(
        details(client, reference),
        vulnerabilities(client, reference, &every, trust),
    )?;
    let mut out = BTreeMap::new();
    let mut scans = scans.platforms;
    for (platform, config) in configs.platforms {
        let digest = config
            .digest
            .parse()
            .map_err(|e| CatalogError::stored(&config.digest, e))?;
        let (_, packages) =
            platform_packages(client, &reference.repository, &digest, trust, cache).await?;
        let matches = scans
            .remove(&platform)
            .and_then(|s| s.matches)
            .map(|m| m.into_iter().map(|m| m.matched).collect());
        out.insert(
            platform,
            Side {
                config,
                packages: packages.map(|p| p.as_ref().clone()),
                matches,
            },
        );
    }
    Ok(out)
}

fn changes(earlier: &Side, later: &Side) -> PlatformChanges {
    let packages = earlier.packages.as_ref().zip(later.packages.as_ref());
    let (packages_added, packages_removed, packages_changed) =
        match packages.map(|(a, b)| package_changes(a, b)) {
            Some((added, removed, changed)) => (Some(added), Some(removed), Some(changed)),
            None => (None, None, None),
        };
    let matches = earlier.matches.as_ref().zip(later.matches.as_ref());
    let (vulnerabilities_new, vulnerabilities_fixed, vulnerabilities_kept) =
        match matches.map(|(a, b)| match_changes(a, b)) {
            Some((new, fixed, kept)) => (Some(new), Some(fixed), Some(kept)),
            None => (None, None, None),
        };
    PlatformChanges {
        from_digest: earlier.config.digest.clone(),
        to_digest: later.config.digest.clone(),
        packages_added,
        packages_removed,
        packages_changed,
        vulnerabilities_new,
        vulnerabilities_fixed,
        vulnerabilities_kept,
        config: config_changes(&earlier.config, &later.config),
    }
}

/// Packages keyed by name and type: those only on one side, and those whose versions
/// differ.
fn package_changes(
    earlier: &[Package],
    later: &[Package],
) -> (Vec<Package>, Vec<Package>, Vec<VersionChange>) {
    let by_key = |all: &[Package]| {
        let mut map: BTreeMap<(String, String), Vec<Package>> = BTreeMap::new();
        for p in all {
            map.entry((p.name.clone(), p.package_type.clone()))
                .or_default()
                .push(p.clone());
        }
        map
    };
    let (a, b) = (by_key(earlier), by_key(later));
    let versions = |ps: &[Package]| {
        ps.iter()
            .map(|p| p.version.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (mut added, mut removed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    for (key, ps) in &b {
        match a.get(key) {
            None => added.extend(ps.iter().cloned()),
            Some(before) if versions(before) != versions(ps) => changed.push(VersionChange {
                name: key.0.clone(),
                package_type: key.1.clone(),
                from: versions(before),
                to: versions(ps),
            }),
            Some(_) => {}
        }
    }
    for (key, ps) in &a {
        if !b.contains_key(key) {
            removed.extend(ps.iter().cloned());
        }
    }
    (added, removed, changed)
}

/// Matches keyed by vulnerability and package: new, fixed and kept.
fn match_changes(earlier: &[Match], later: &[Match]) -> (Vec<Match>, Vec<Match>, Vec<Match>) {
    let key = |m: &Match| (m.id.clone(), m.package.clone());
    let a: BTreeSet<_> = earlier.iter().map(key).collect();
    let b: BTreeSet<_> = later.iter().map(key).collect();
    let new = later
        .iter()
        .filter(|m| !a.contains(&key(m)))
        .cloned()
        .collect();
    let fixed = earlier
        .iter()
        .filter(|m| !b.contains(&key(m)))
        .cloned()
        .collect();
    let kept = later
        .iter()
        .filter(|m| a.contains(&key(m)))
        .cloned()
        .collect();
    (new, fixed, kept)
}

fn config_changes(a: &PlatformDetails, b: &PlatformDetails) -> Vec<ConfigChange> {
    let joined = |v: &[String], sep: &str| (!v.is_empty()).then(|| v.join(sep));
    let mut fields: Vec<(String, Option<String>, Option<String>)> = vec![
        ("env".into(), joined(&a.env, "\n"), joined(&b.env, "\n")),
        ("user".into(), a.user.clone(), b.user.clone()),
        (
            "entrypoint".into(),
            joined(&a.entrypoint, " "),
            joined(&b.entrypoint, " "),
        ),
        ("cmd".into(), joined(&a.cmd, " "), joined(&b.cmd, " ")),
        (
            "workingDir".into(),
            a.working_dir.clone(),
            b.working_dir.clone(),
        ),
        (
            "exposedPorts".into(),
            joined(&a.exposed_ports, ", "),
            joined(&b.exposed_ports, ", "),
        ),
    ];
    let keys: BTreeSet<&String> = a.labels.keys().chain(b.labels.keys()).collect();
    for key in keys {
        fields.push((
            format!("label:{key}"),
            a.labels.get(key).cloned(),
            b.labels.get(key).cloned(),
        ));
    }
    fields
        .into_iter()
        .filter(|(_, from, to)| from != to)
        .map(|(field, from, to)| ConfigChange { field, from, to })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, version: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            package_type: "apk".into(),
            purl: None,
            licenses: Vec::new(),
        }
    }

    #[test]
    fn packages_are_added_removed_and_changed_by_name_and_type() {
        let before = [
            package("musl", "1.2.4"),
            package("zlib", "1.3"),
            package("curl", "8.5"),
        ];
        let after = [
            package("musl", "1.2.5"),
            package("zlib", "1.3"),
            package("jq", "1.7"),
        ];
        let (added, removed, changed) = package_changes(&before, &after);
        assert_eq!(added, [package("jq", "1.7")]);
        assert_eq!(removed, [package("curl", "8.5")]);
        assert_eq!(changed.len(), 1);
        assert_eq!(
            (changed[0].from.as_str(), changed[0].to.as_str()),
            ("1.2.4", "1.2.5")
        );
    }
}
