//! syft: one run per platform manifest, straight from the registry, writing Syft JSON
//! and SPDX JSON together.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use super::process::run;
use super::{ScanError, ScannerVersion};
use crate::digest::Digest;
use crate::oci::Platform;
use crate::registry::{Credentials, Tls};

/// How to run syft.
#[derive(Clone, Debug)]
pub struct Syft {
    /// The syft binary.
    pub program: PathBuf,
    /// Longest a scan may take.
    pub timeout: Duration,
}

/// Both SBOMs of one platform manifest, exactly as syft wrote them. Only a syft run
/// makes one: it is refcat's own scanner output, which refcat may sign.
#[derive(Clone, Debug)]
pub struct Sboms {
    syft_json: Bytes,
    spdx_json: Bytes,
    packages: usize,
}

impl Sboms {
    /// `-o syft-json`.
    pub fn syft_json(&self) -> &Bytes {
        &self.syft_json
    }

    /// `-o spdx-json`.
    pub fn spdx_json(&self) -> &Bytes {
        &self.spdx_json
    }

    /// How many packages syft found.
    pub fn packages(&self) -> usize {
        self.packages
    }
}

/// Where the image is and how to reach it.
#[derive(Clone, Debug)]
pub struct ImageSource<'a> {
    /// Registry host[:port].
    pub registry: &'a str,
    /// Repository path.
    pub repository: &'a str,
    /// The platform manifest to scan.
    pub digest: &'a Digest,
    /// Its platform.
    pub platform: &'a Platform,
    /// Credentials syft uses for the registry (passed in its environment, never argv).
    pub credentials: &'a Credentials,
    /// Whether the registry speaks plain HTTP.
    pub plain_http: bool,
    /// Which registry certificates to trust.
    pub tls: &'a Tls,
}

impl Syft {
    /// The syft version, from `syft version -o json`.
    pub async fn version(&self) -> Result<ScannerVersion, ScanError> {
        let mut cmd = super::process::command(&self.program, "SYFT_");
        cmd.args(["version", "-o", "json"])
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false");
        let out = run(
            "syft",
            cmd,
            "reporting its version",
            Duration::from_secs(30),
        )
        .await?;
        let version = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["version"].as_str().map(str::to_string))
            .ok_or_else(|| ScanError::Output {
                tool: "syft",
                what: "reporting its version".into(),
                reason: "no version in `syft version -o json`".into(),
            })?;
        Ok(ScannerVersion {
            name: "syft",
            version,
        })
    }

    /// Scans one platform manifest. syft writes empty files when it fails, so its exit
    /// status decides, and the Syft JSON must name the digest that was asked for.
    pub async fn scan(&self, image: &ImageSource<'_>) -> Result<Sboms, ScanError> {
        let io = |source| ScanError::Io {
            tool: "syft",
            source,
        };
        let dir = super::process::scratch().map_err(io)?;
        let syft_path = dir.path().join("sbom.syft.json");
        let spdx_path = dir.path().join("sbom.spdx.json");
        let source = format!(
            "registry:{}/{}@{}",
            image.registry, image.repository, image.digest
        );
        let what = format!("scanning {source} ({})", image.platform);
        let mut cmd = super::process::command(&self.program, "SYFT_");
        // syft unpacks the image's layers under TMPDIR: into the scratch directory.
        cmd.env("TMPDIR", dir.path());
        cmd.arg("scan")
            .arg(&source)
            .args(["--platform", &image.platform.to_string(), "-q"])
            .arg("-o")
            .arg(format!("syft-json={}", syft_path.display()))
            .arg("-o")
            .arg(format!("spdx-json={}", spdx_path.display()))
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false");
        if image.plain_http {
            cmd.env("SYFT_REGISTRY_INSECURE_USE_HTTP", "true");
        }
        super::process::trust(&mut cmd, "SYFT_", image.tls, dir.path()).map_err(io)?;
        match image.credentials {
            Credentials::Basic { username, password } => {
                cmd.env("SYFT_REGISTRY_AUTH_AUTHORITY", image.registry)
                    .env("SYFT_REGISTRY_AUTH_USERNAME", username)
                    .env("SYFT_REGISTRY_AUTH_PASSWORD", password.expose());
            }
            Credentials::Bearer(token) => {
                cmd.env("SYFT_REGISTRY_AUTH_AUTHORITY", image.registry)
                    .env("SYFT_REGISTRY_AUTH_TOKEN", token.expose());
            }
            Credentials::Anonymous | Credentials::IdentityToken(_) => {}
        }
        run("syft", cmd, &what, self.timeout).await?;
        let syft_json = Bytes::from(tokio::fs::read(&syft_path).await.map_err(io)?);
        let spdx_json = Bytes::from(tokio::fs::read(&spdx_path).await.map_err(io)?);
        let bad = |reason: String| ScanError::Output {
            tool: "syft",
            what: what.clone(),
            reason,
        };
        let document: serde_json::Value = serde_json::from_slice(&syft_json)
            .map_err(|e| bad(format!("the Syft JSON does not parse: {e}")))?;
        serde_json::from_slice::<serde::de::IgnoredAny>(&spdx_json)
            .map_err(|e| bad(format!("the SPDX JSON does not parse: {e}")))?;
        let scanned = document["source"]["metadata"]["manifestDigest"].as_str();
        if scanned != Some(image.digest.as_ref()) {
            return Err(bad(format!(
                "it scanned {}, not {}",
                scanned.unwrap_or("an unknown manifest"),
                image.digest
            )));
        }
        let packages = document["artifacts"].as_array().map_or(0, Vec::len);
        Ok(Sboms {
            syft_json,
            spdx_json,
            packages,
        })
    }
}
