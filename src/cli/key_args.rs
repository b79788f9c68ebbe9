//! Key files and their password.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::secret::Secret;
use crate::sign::{KeyPair, PublicKey};

/// The password of cosign key files: `COSIGN_PASSWORD`, as cosign reads it.
pub fn key_password() -> anyhow::Result<Secret> {
    std::env::var("COSIGN_PASSWORD")
        .map(Secret::new)
        .context("set COSIGN_PASSWORD to the key's password (it may be empty: COSIGN_PASSWORD=)")
}

/// Loads an encrypted private key file.
pub fn load_private_key(path: &Path) -> anyhow::Result<KeyPair> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the private key {}", path.display()))?;
    KeyPair::from_encrypted_pem(&text, &key_password()?)
        .with_context(|| format!("cannot load the private key {}", path.display()))
}

/// Loads public key files.
pub fn load_public_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<PublicKey>> {
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the public key {}", path.display()))?;
            PublicKey::from_pem(&text)
                .with_context(|| format!("cannot load the public key {}", path.display()))
        })
        .collect()
}
