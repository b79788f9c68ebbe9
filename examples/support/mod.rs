//! What the examples share: where the pinned tools are, and the sample images.

use std::path::PathBuf;

#[allow(dead_code)] // not every example builds images
pub mod fixture;
#[allow(dead_code)] // only the API benchmark needs a slow registry
pub mod slow;

/// The tools cache (`REFCAT_TOOLS`, default `~/.cache/refcat/tools`).
pub fn tools() -> PathBuf {
    std::env::var_os("REFCAT_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/refcat/tools")
        })
}

/// A pinned tool's binary.
#[allow(dead_code)] // not every benchmark runs a tool by name
pub fn tool(name: &str) -> PathBuf {
    tools().join("bin").join(name)
}
