//! grype: matching a stored Syft JSON against the vulnerability DB, always offline.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use super::Sboms;
use crate::trust::Verified;
use tokio::process::Command;

use super::process::run;
use super::{ScanError, ScannerVersion};
use crate::registry::Tls;

/// How to run grype.
#[derive(Clone, Debug)]
pub struct Grype {
    /// The grype binary.
    pub program: PathBuf,
    /// Longest a match run may take.
    pub timeout: Duration,
    /// `GRYPE_DB_CACHE_DIR`; grype's own default when `None`.
    pub db_cache_dir: Option<PathBuf>,
}

/// The vulnerability DB grype uses, from `grype db status -o json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbStatus {
    /// When the DB was built (RFC 3339).
    pub built: String,
    /// Its schema version, e.g. `v6.1.9`.
    pub schema_version: String,
}

impl Grype {
    /// grype with the offline settings: no DB update, no age check, no update check.
    fn command(&self) -> Command {
        let mut cmd = super::process::command(&self.program, "GRYPE_");
        cmd.env("GRYPE_DB_AUTO_UPDATE", "false")
            .env("GRYPE_DB_VALIDATE_AGE", "false")
            .env("GRYPE_CHECK_FOR_APP_UPDATE", "false");
        if let Some(dir) = &self.db_cache_dir {
            cmd.env("GRYPE_DB_CACHE_DIR", dir);
        }
        cmd
    }

    /// The grype version, from `grype version -o json`.
    pub async fn version(&self) -> Result<ScannerVersion, ScanError> {
        let mut cmd = self.command();
        cmd.args(["version", "-o", "json"]);
        let what = "reporting its version";
        let out = run("grype", cmd, what, Duration::from_secs(30)).await?;
        let version = json_field(&out.stdout, "version").ok_or_else(|| ScanError::Output {
            tool: "grype",
            what: what.into(),
            reason: "no version in `grype version -o json`".into(),
        })?;
        Ok(ScannerVersion {
            name: "grype",
            version,
        })
    }

    /// The DB in use; an error when there is none or it is not valid.
    pub async fn db_status(&self) -> Result<DbStatus, ScanError> {
        let mut cmd = self.command();
        cmd.args(["db", "status", "-o", "json"]);
        let what = "checking its vulnerability DB";
        let out = run("grype", cmd, what, Duration::from_secs(60)).await?;
        let bad = |reason: &str| ScanError::Output {
            tool: "grype",
            what: what.into(),
            reason: reason.into(),
        };
        let status: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|_| bad("`grype db status -o json` printed no JSON"))?;
        if status["valid"] != true {
            return Err(bad(
                "the vulnerability DB is not valid: import one with `grype db import`",
            ));
        }
        Ok(DbStatus {
            built: status["built"]
                .as_str()
                .ok_or_else(|| bad("no built time"))?
                .to_string(),
            schema_version: status["schemaVersion"]
                .as_str()
                .ok_or_else(|| bad("no schema version"))?
                .to_string(),
        })
    }

    /// Matches a Syft JSON document, this run's or one read back verified; grype's JSON
    /// output, byte for byte. grype reads no registry here, but gets refcat's registry
    /// trust (`tls`) like syft, so that nothing it might fetch is checked differently.
    pub async fn scan_sbom(
        &self,
        sbom: SbomToMatch<'_>,
        what: &str,
        tls: &Tls,
    ) -> Result<GrypeResult, ScanError> {
        let syft_json: &[u8] = match sbom {
            SbomToMatch::Fresh(sboms) => sboms.syft_json(),
            SbomToMatch::Stored(stored) => stored.get(),
        };
        let io = |source| ScanError::Io {
            tool: "grype",
            source,
        };
        let dir = super::process::scratch().map_err(io)?;
        let sbom = dir.path().join("sbom.syft.json");
        tokio::fs::write(&sbom, syft_json).await.map_err(io)?;
        let mut cmd = self.command();
        cmd.env("TMPDIR", dir.path());
        super::process::trust(&mut cmd, "GRYPE_", tls, dir.path()).map_err(io)?;
        cmd.arg(format!("sbom:{}", sbom.display()))
            .args(["-o", "json", "-q"]);
        let what = format!("matching {what}");
        let out = run("grype", cmd, &what, self.timeout).await?;
        serde_json::from_slice::<serde::de::IgnoredAny>(&out.stdout).map_err(|e| {
            ScanError::Output {
                tool: "grype",
                what,
                reason: format!("its JSON does not parse: {e}"),
            }
        })?;
        Ok(GrypeResult(Bytes::from(out.stdout)))
    }
}

/// The Syft JSON grype matches: one syft just wrote, or one refcat stored earlier and
/// read back verified with its key. Nothing else reaches a result refcat signs.
#[derive(Clone, Copy, Debug)]
pub enum SbomToMatch<'a> {
    /// This run's syft output.
    Fresh(&'a Sboms),
    /// refcat's own stored Syft JSON.
    Stored(&'a Verified<Bytes>),
}

/// grype's JSON output, byte for byte; only a grype run makes one.
#[derive(Clone, Debug)]
pub struct GrypeResult(Bytes);

impl GrypeResult {
    /// The bytes grype printed.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

fn json_field(bytes: &[u8], field: &str) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()?
        .get(field)?
        .as_str()
        .map(str::to_string)
}
