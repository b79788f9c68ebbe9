//! Read views resolved from the registry: platform manifests, refcat's artifacts, the
//! referrers tree, signature verdicts, and the catalog's image views.

pub mod advisory;
pub mod aggregate;
pub mod artifacts;
pub mod compare;
pub mod details;
pub mod directory;
mod error;
pub mod existing;
pub mod history;
pub mod image;
pub mod platforms;
pub mod provenance;
pub mod referrers_tree;
pub mod repositories;
pub mod sbom;
pub mod signatures;
pub mod stored;
pub mod tags;
pub mod vulnerabilities;

pub use error::CatalogError;
