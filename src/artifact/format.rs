//! The outputs refcat attaches, by their scanners' `-o` names.

use crate::artifact::annotations::FORMAT;
use crate::media_types::{GRYPE_JSON, SPDX_JSON, SYFT_JSON};
use crate::oci::Descriptor;

/// The outputs refcat attaches, by their scanners' `-o` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Syft's native JSON SBOM.
    SyftJson,
    /// SPDX JSON SBOM.
    SpdxJson,
    /// Grype's JSON results.
    GrypeJson,
}

impl Format {
    /// Every format, in the order refcat publishes them.
    pub const ALL: [Format; 3] = [Format::SyftJson, Format::SpdxJson, Format::GrypeJson];

    /// The name in `dev.refcat.format`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::SyftJson => "syft-json",
            Format::SpdxJson => "spdx-json",
            Format::GrypeJson => "grype-json",
        }
    }

    /// The artifactType of artifacts in this format.
    pub fn artifact_type(self) -> &'static str {
        match self {
            Format::SyftJson => SYFT_JSON,
            Format::SpdxJson => SPDX_JSON,
            Format::GrypeJson => GRYPE_JSON,
        }
    }

    /// The format whose artifactType is `artifact_type`.
    pub fn of_artifact_type(artifact_type: Option<&str>) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|f| artifact_type == Some(f.artifact_type()))
    }

    /// Which format a listed referrer claims to hold: by artifactType, else by refcat's
    /// format annotation (some registries list the config media type as artifactType).
    /// A claim only; the manifest, read by digest, decides.
    pub fn of(descriptor: &Descriptor) -> Option<Format> {
        Format::of_artifact_type(descriptor.artifact_type.as_deref()).or_else(|| {
            let named = descriptor.annotations.get(FORMAT)?;
            Format::ALL.into_iter().find(|f| f.as_str() == named)
        })
    }
}
