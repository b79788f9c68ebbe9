//! `refcat key`: cosign-compatible key pairs.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::key_args::key_password;
use crate::sign::KeyPair;

/// Manage signing keys.
#[derive(Debug, Args)]
#[command(after_help = super::exit::KEY_EXIT_CODES)]
pub struct KeyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KeyCommand,
}

/// Key subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new key pair, PREFIX.key (encrypted with COSIGN_PASSWORD) and PREFIX.pub,
    /// in the format `cosign generate-key-pair` writes.
    #[command(after_help = super::exit::KEY_EXIT_CODES)]
    Generate {
        /// File name prefix.
        #[arg(
            long,
            env = "REFCAT_OUTPUT_KEY_PREFIX",
            default_value = "cosign",
            value_name = "PREFIX"
        )]
        output_key_prefix: PathBuf,
        /// Overwrite existing files.
        #[arg(long, env = "REFCAT_FORCE")]
        force: bool,
    },
}

impl KeyArgs {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<u8> {
        match self.command {
            KeyCommand::Generate {
                output_key_prefix,
                force,
            } => {
                let private = output_key_prefix.with_extension("key");
                let public = output_key_prefix.with_extension("pub");
                for path in [&private, &public] {
                    if path.exists() && !force {
                        anyhow::bail!("{} exists; pass --force to overwrite it", path.display());
                    }
                }
                let password = key_password()?;
                let pair = KeyPair::generate();
                write_private(&private, &pair.to_encrypted_pem(&password)?)?;
                std::fs::write(&public, pair.public_key().to_pem())
                    .with_context(|| format!("cannot write {}", public.display()))?;
                eprintln!(
                    "Private key written to {}\nPublic key written to {}",
                    private.display(),
                    public.display()
                );
                Ok(0)
            }
        }
    }
}

/// Writes the private key readable by its owner only.
fn write_private(path: &std::path::Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(pem.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
