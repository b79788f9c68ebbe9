//! Read views resolved from the registry: platform manifests, refcat's artifacts as
//! [`crate::trust`] judges them, the referrers tree, and the catalog's image views.

pub mod advisory;
pub mod aggregate;
pub mod artifacts;
pub mod compare;
pub mod details;
pub mod directory;
mod error;
pub mod history;
pub mod image;
pub mod platforms;
pub mod provenance;
pub mod referrers_tree;
pub mod repositories;
pub mod sbom;
pub mod stored;
pub mod subjects;
pub mod summary;
pub mod tags;
pub mod vulnerabilities;

pub use error::CatalogError;
