//! Read views resolved from the registry: platform manifests, refcat's artifacts, the
//! referrers tree, signature verdicts, and the catalog's image views.

pub mod artifacts;
mod error;
pub mod existing;
pub mod platforms;
pub mod referrers_tree;
pub mod signatures;

pub use error::CatalogError;
