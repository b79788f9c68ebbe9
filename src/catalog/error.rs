//! What a catalog view can fail with.

use crate::registry::RegistryError;

/// Why a view could not be built.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CatalogError {
    /// The registry failed or refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The reference did not resolve to platform manifests.
    #[error(transparent)]
    Resolve(#[from] super::platforms::ResolveError),
    /// The registry refuses `_catalog` (or has none), and no repositories were named.
    #[error("the registry does not let refcat list its repositories ({0}): name them with --repository NAME (repeatable) or --repositories-file FILE; globs such as team/* need _catalog")]
    NoCatalog(RegistryError),
    /// A query parameter out of its documented range.
    #[error("{0}")]
    Query(String),
    /// Nothing in the catalog answers to what was asked for.
    #[error("{0}")]
    NotFound(String),
    /// A stored document is not what refcat wrote.
    #[error("{what}: {reason}")]
    Stored {
        /// Which document.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<crate::trust::ContentError> for CatalogError {
    fn from(e: crate::trust::ContentError) -> Self {
        match e {
            crate::trust::ContentError::Registry(e) => CatalogError::Registry(e),
            crate::trust::ContentError::Stored { what, reason } => {
                CatalogError::Stored { what, reason }
            }
        }
    }
}

impl CatalogError {
    /// Checks that a page parameter lies in `1..=max`.
    pub fn check_range(name: &str, value: Option<usize>, max: usize) -> Result<(), CatalogError> {
        match value {
            Some(v) if v == 0 || v > max => Err(CatalogError::Query(format!(
                "{name} must be between 1 and {max}, not {v}"
            ))),
            _ => Ok(()),
        }
    }

    /// A text parameter must be at most `max` characters (as OpenAPI's `maxLength`
    /// counts them).
    pub fn check_len(name: &str, value: Option<&str>, max: usize) -> Result<(), CatalogError> {
        match value.map(|v| v.chars().count()) {
            Some(n) if n > max => Err(CatalogError::Query(format!(
                "{name} must be at most {max} characters, not {n}"
            ))),
            _ => Ok(()),
        }
    }

    /// A stored document that does not parse.
    pub fn stored(what: impl Into<String>, reason: impl ToString) -> Self {
        CatalogError::Stored {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// Whether a tag's failure is about that tag alone (it is not an image, is gone, or is
/// unreadable), so the view goes on without it; a failing registry fails the view.
pub(super) fn about_the_tag_alone(error: &CatalogError) -> bool {
    match error {
        CatalogError::Resolve(super::platforms::ResolveError::Registry(e))
        | CatalogError::Registry(e) => e.is_not_found(),
        CatalogError::Resolve(_) | CatalogError::Stored { .. } => true,
        CatalogError::Query(_) | CatalogError::NotFound(_) | CatalogError::NoCatalog(_) => false,
    }
}
