//! refcat's artifacts on a platform manifest, sorted by format from one referrers
//! listing: what publish's CheckExisting decides on, and what the views read. An artifact is listed only once its manifest is pushed,
//! and refcat pushes that manifest last, after its blobs and its signature: so a listed
//! artifact is complete and signed.

use crate::artifact::annotations::{CREATED, FORMAT, GRYPE_DB_BUILT};
use crate::artifact::media_types::{GRYPE_JSON, SPDX_JSON, SYFT_JSON};
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

    /// Which format a referrer descriptor holds: by artifactType, else by refcat's
    /// format annotation (some registries list the config media type as artifactType).
    pub fn of(descriptor: &Descriptor) -> Option<Format> {
        let all = [Format::SyftJson, Format::SpdxJson, Format::GrypeJson];
        all.into_iter()
            .find(|f| descriptor.artifact_type.as_deref() == Some(f.artifact_type()))
            .or_else(|| {
                let named = descriptor.annotations.get(FORMAT)?;
                all.into_iter().find(|f| f.as_str() == named)
            })
    }
}

/// refcat's artifacts on one platform manifest, newest first within each format.
#[derive(Clone, Debug, Default)]
pub struct Existing {
    /// Syft JSON artifacts.
    pub syft: Vec<Descriptor>,
    /// SPDX JSON artifacts.
    pub spdx: Vec<Descriptor>,
    /// Grype artifacts.
    pub grype: Vec<Descriptor>,
}

/// What a platform manifest still needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Missing {
    /// A Syft JSON artifact.
    pub syft: bool,
    /// An SPDX artifact.
    pub spdx: bool,
    /// A Grype artifact made with the current DB.
    pub grype: bool,
}

impl Missing {
    /// Everything: what `--force` asks for.
    pub const ALL: Missing = Missing {
        syft: true,
        spdx: true,
        grype: true,
    };

    /// Whether anything is missing.
    pub fn any(&self) -> bool {
        self.syft || self.spdx || self.grype
    }
}

impl Existing {
    /// Sorts a referrers listing into refcat's formats.
    pub fn from_referrers(referrers: &[Descriptor]) -> Existing {
        let mut existing = Existing::default();
        for descriptor in referrers {
            let slot = match Format::of(descriptor) {
                Some(Format::SyftJson) => &mut existing.syft,
                Some(Format::SpdxJson) => &mut existing.spdx,
                Some(Format::GrypeJson) => &mut existing.grype,
                None => continue,
            };
            slot.push(descriptor.clone());
        }
        for list in [&mut existing.syft, &mut existing.spdx, &mut existing.grype] {
            // RFC 3339 UTC strings sort by time.
            list.sort_by(|a, b| b.annotations.get(CREATED).cmp(&a.annotations.get(CREATED)));
        }
        existing
    }

    /// What is missing, given the built time of the Grype DB in use.
    pub fn missing(&self, db_built: &str) -> Missing {
        let current_grype = self.grype.iter().any(|d| {
            d.annotations
                .get(GRYPE_DB_BUILT)
                .is_some_and(|b| !is_older(b, db_built))
        });
        Missing {
            syft: self.syft.is_empty(),
            spdx: self.spdx.is_empty(),
            grype: !current_grype,
        }
    }
}

/// Whether RFC 3339 time `a` is before `b`; unparsable times count as old.
fn is_older(a: &str, b: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;
    match (
        OffsetDateTime::parse(a, &Rfc3339),
        OffsetDateTime::parse(b, &Rfc3339),
    ) {
        (Ok(a), Ok(b)) => a < b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referrer(artifact_type: &str, annotations: &[(&str, &str)]) -> Descriptor {
        let mut d = Descriptor::new(
            crate::artifact::media_types::OCI_MANIFEST,
            crate::digest::sha256(format!("{artifact_type}{annotations:?}").as_bytes()),
            1,
        );
        d.artifact_type = Some(artifact_type.into());
        d.annotations = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        d
    }

    #[test]
    fn decides_what_is_missing() {
        let listing = [
            referrer(SYFT_JSON, &[]),
            // artifactType as go-containerregistry lists it: the config media type.
            referrer(
                crate::artifact::media_types::EMPTY_JSON,
                &[(FORMAT, "spdx-json")],
            ),
            referrer(GRYPE_JSON, &[(GRYPE_DB_BUILT, "2026-11-01T00:00:00Z")]),
            referrer("application/vnd.other", &[]),
        ];
        let existing = Existing::from_referrers(&listing);
        assert_eq!(existing.missing("2026-11-01T00:00:00Z"), Missing::default());
        assert_eq!(
            existing.missing("2026-11-02T00:00:00Z"),
            Missing {
                grype: true,
                ..Missing::default()
            }
        );
        assert_eq!(
            Existing::default().missing("2026-11-01T00:00:00Z"),
            Missing::ALL
        );
    }
}
