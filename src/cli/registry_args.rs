//! Options shared by every subcommand that talks to a registry.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::registry::{Client, ClientConfig, Credentials, Secret};

/// How to reach and authenticate to the registry.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Registry user name. The password comes from --password-stdin or REFCAT_PASSWORD.
    #[arg(long, short = 'u', env = "REFCAT_USERNAME")]
    pub username: Option<String>,
    /// Read the registry password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Docker config file with `auths` or credential helpers (default: $DOCKER_CONFIG/config.json, ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    pub docker_config: Option<PathBuf>,
    /// Use plain HTTP for a registry that is not on loopback (loopback always uses it).
    #[arg(long)]
    pub plain_http: bool,
    /// Seconds to wait for each registry request.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
    /// Attempts for a request that fails with 429/5xx or times out.
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
    /// Host of a bearer token service on another host than the registry that may be
    /// sent the registry credentials (Docker Hub: auth.docker.io). Without it, a token
    /// service elsewhere is asked for an anonymous token.
    #[arg(
        long,
        env = "REFCAT_TRUSTED_REALMS",
        value_delimiter = ',',
        value_name = "HOST"
    )]
    pub trusted_realm: Vec<String>,
}

impl RegistryArgs {
    /// A client for `registry` configured from these options.
    pub fn client(&self, registry: &str) -> anyhow::Result<Client> {
        Ok(Client::new(self.config(registry)?))
    }

    /// The client configuration these options describe, for callers that add to it.
    pub fn config(&self, registry: &str) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new(registry);
        config.plain_http = self.plain_http;
        config.request_timeout = Duration::from_secs(self.timeout.max(1));
        config.max_attempts = self.retries.max(1);
        config.credentials = self.credentials(registry)?;
        config.trusted_realms = self.trusted_realm.clone();
        Ok(config)
    }

    fn credentials(&self, registry: &str) -> anyhow::Result<Credentials> {
        if let Some(username) = &self.username {
            let password = if self.password_stdin {
                let mut buf = String::new();
                std::io::stdin()
                    .read_to_string(&mut buf)
                    .context("reading the password from standard input")?;
                buf.trim_end_matches(['\r', '\n']).to_string()
            } else {
                std::env::var("REFCAT_PASSWORD").context(
                    "--username needs a password: pass --password-stdin or set REFCAT_PASSWORD",
                )?
            };
            return Ok(Credentials::Basic {
                username: username.clone(),
                password: Secret::new(password),
            });
        }
        match self
            .docker_config
            .clone()
            .or_else(Credentials::default_docker_config)
        {
            Some(path) => Ok(Credentials::from_docker_config(&path, registry)?),
            None => Ok(Credentials::Anonymous),
        }
    }
}
