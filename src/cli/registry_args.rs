//! Options shared by every subcommand that talks to a registry.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::registry::{Client, ClientConfig, Credentials, Secret, Tls};

/// How to reach and authenticate to the registry.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Registry user name. The password comes from --password-stdin or REFCAT_PASSWORD.
    #[arg(long, short = 'u', env = "REFCAT_USERNAME")]
    pub username: Option<String>,
    /// Read the registry password from standard input.
    #[arg(long, env = "REFCAT_PASSWORD_STDIN")]
    pub password_stdin: bool,
    /// Docker config file with `auths` or credential helpers (default: $DOCKER_CONFIG/config.json, ~/.docker/config.json).
    #[arg(long, env = "REFCAT_DOCKER_CONFIG", value_name = "FILE")]
    pub docker_config: Option<PathBuf>,
    /// Speak plain HTTP to the registry. Without it refcat uses HTTPS, except that a
    /// registry on loopback that does not speak TLS is reached over plain HTTP.
    #[arg(long, env = "REFCAT_PLAIN_HTTP")]
    pub plain_http: bool,
    /// A CA certificate file (PEM) to trust for the registry's TLS certificate, besides
    /// the public and system roots; repeatable. syft and grype get it too.
    #[arg(
        long,
        env = "REFCAT_CA_FILE",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub ca_file: Vec<PathBuf>,
    /// Do not check the registry's TLS certificate at all (logged as a warning; syft and
    /// grype skip it too). Prefer --ca-file.
    #[arg(long, env = "REFCAT_INSECURE")]
    pub insecure: bool,
    /// How long to wait for each registry request (30s, 2m; a bare number is seconds).
    #[arg(long, env = "REFCAT_TIMEOUT", default_value = "30s", value_parser = super::duration::parse, value_name = "DURATION")]
    pub timeout: Duration,
    /// Times to retry a request that fails with 429/5xx or times out, after the first try.
    #[arg(long, env = "REFCAT_RETRIES", default_value_t = 3, value_name = "N")]
    pub retries: u32,
    /// A bearer token service on another host or port than the registry that refcat may
    /// ask for tokens, with the registry credentials: HOST (on the default port of its
    /// scheme) or HOST:PORT. Without it, a token service elsewhere is not asked at all
    /// (Docker Hub's auth.docker.io is trusted for Docker Hub).
    #[arg(
        long,
        env = "REFCAT_TRUSTED_REALM",
        value_delimiter = ',',
        value_name = "HOST[:PORT]"
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
        config.tls = Tls::new(&self.ca_file, self.insecure)?;
        config.request_timeout = self.timeout.max(Duration::from_millis(100));
        config.max_attempts = self.retries.saturating_add(1);
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
