//! `refcat serve`: the catalog API over one registry.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Args;

use super::key_args::load_public_keys;
use super::RegistryArgs;
use std::sync::Arc;

use crate::app::router;
use crate::cache::CacheConfig;
use crate::catalog::sbom::PackageCache;
use crate::reference::{parse_registry, RepositoryName};
use crate::registry::Credentials;
use crate::registry::{is_loopback, Client};
use crate::trust::Trust;
use crate::web::access::TokenSet;
use crate::web::{Access, AppState, ViewCache};

/// Serve the container catalog of a registry over HTTP, read live from its tags and
/// referrers (no database).
///
/// Routes: /v1/images, /v1/images/{name}, /v1/vulnerabilities, /v1/images/{name}/tags, /v1/images/{name}/details/{tag},
/// /v1/images/{name}/sbom/{tag}, /v1/images/{name}/vulnerabilities/{tag},
/// /v1/images/{name}/history/{stream},
/// /v1/images/{name}/releases/{digest}/details|sbom|vulnerabilities, /v1/openapi.json,
/// /v1/docs/, /healthz, /readyz, /metrics.
#[derive(Debug, Args)]
#[command(after_help = super::exit::SERVER_EXIT_CODES)]
pub struct ServeArgs {
    /// The registry (host[:port]).
    #[arg(env = "REFCAT_REGISTRY")]
    pub registry: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "REFCAT_LISTEN")]
    pub listen: SocketAddr,
    /// How long tag resolutions, tag lists, the catalog, referrer lists, signature
    /// verdicts and the views built from them are reused before the registry is asked
    /// again (30s, 5m). Content addressed by digest never changes and is kept while
    /// memory allows.
    #[arg(long, default_value = "30s", env = "REFCAT_CACHE_TTL", value_parser = super::duration::parse, value_name = "DURATION")]
    pub cache_ttl: std::time::Duration,
    /// MiB of memory for caches in all, split evenly between the ten of them
    /// (rendered views, manifests, blobs, tags, the catalog and referrer lists as read
    /// from the registry, the repositories pass-through callers proved access to, and
    /// parsed SBOMs). Under --auth pass-through all callers share them.
    #[arg(
        long,
        default_value_t = 512,
        env = "REFCAT_CACHE_MIB",
        value_name = "MIB"
    )]
    pub cache_mib: u64,
    /// Public key(s) to verify refcat's artifacts with (cosign.pub); views report each
    /// artifact's verdict. Without a key nothing is checked, and every view and page
    /// says so (`not-checked`): anyone with push access could have written what it shows.
    #[arg(long, env = "REFCAT_KEY", value_delimiter = ',', value_name = "FILE")]
    pub key: Vec<std::path::PathBuf>,
    /// Hide artifacts whose signature does not verify with --key.
    #[arg(long, env = "REFCAT_REQUIRE_SIGNATURE")]
    pub require_signature: bool,
    /// The tag that summarises a repository in the directory when it has it
    /// (default: the newest by created). With it, a summary reads that one tag; without
    /// it, finding the newest reads every tag of the repository.
    #[arg(long, env = "REFCAT_DEFAULT_TAG", value_name = "TAG")]
    pub default_tag: Option<String>,
    /// The repository where `refcat worker --aggregate-repository` stores the catalog
    /// aggregate: /v1/vulnerabilities serves it with one fetch (falling back to
    /// computing it live), and the directory leaves the repository out.
    #[arg(long, env = "REFCAT_AGGREGATE_REPOSITORY", value_name = "REPOSITORY")]
    pub aggregate_repository: Option<RepositoryName>,
    /// Who may read the catalog: `none` (anyone who reaches it; refused on a
    /// non-loopback address without --public), `token` (a bearer token from
    /// --token-file; views read with refcat's own credentials, for a read-only service
    /// account) or `pass-through` (each caller's registry credentials, Basic or Bearer as
    /// `docker login` sends them, read with: a caller sees what they could pull).
    #[arg(long, env = "REFCAT_AUTH", value_enum, default_value_t = AuthMode::None)]
    pub auth: AuthMode,
    /// The tokens `--auth token` accepts: one a line, or `sha256:<hex>` of one.
    #[arg(long, env = "REFCAT_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Serve with `--auth none` on an address other than loopback: the exposure of every
    /// SBOM and vulnerability list to whoever reaches it is intended.
    #[arg(long, env = "REFCAT_PUBLIC")]
    pub public: bool,
    #[command(flatten)]
    pub repositories: super::RepositoryArgs,
    #[command(flatten)]
    pub server: super::ServerArgs,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

/// Two caches of rendered views, seven of registry content and the parsed SBOMs share
/// `--cache-mib`.
const CACHES: u64 = 10;

/// Who may read the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Anyone who reaches the server.
    None,
    /// Callers with a token from --token-file.
    Token,
    /// Callers' own registry credentials, passed to the registry.
    PassThrough,
}

impl ServeArgs {
    /// The access policy these options ask for, refusing an open catalog on an address
    /// others reach unless --public says so.
    fn access(&self) -> anyhow::Result<Access> {
        match (self.auth, &self.token_file) {
            (AuthMode::Token, None) => {
                anyhow::bail!("--auth token needs --token-file with the tokens it accepts")
            }
            (AuthMode::Token, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --token-file {}", path.display()))?;
                let tokens = TokenSet::parse(&text, &path.display().to_string())
                    .map_err(anyhow::Error::msg)?;
                return Ok(Access::Tokens(Arc::new(tokens)));
            }
            (_, Some(_)) => anyhow::bail!("--token-file is for --auth token"),
            _ => {}
        }
        if self.auth == AuthMode::PassThrough {
            if self.registry_args.username.is_some() {
                anyhow::bail!(
                    "--auth pass-through reads with each caller's credentials: drop --username"
                );
            }
            let exposed = match (self.registry_args.plain_http, self.registry_args.insecure) {
                (true, _) => Some("--plain-http"),
                (_, true) => Some("--insecure"),
                _ => None,
            };
            if let Some(flag) =
                exposed.filter(|_| !is_loopback(&self.registry.to_ascii_lowercase()))
            {
                anyhow::bail!(
                    "refusing --auth pass-through with {flag}: every caller's registry password or token would travel to {} where anyone on the way can read it; reach the registry over verified TLS (--ca-file for a private CA), or run refcat beside it and name it on loopback",
                    self.registry
                );
            }
            return Ok(Access::PassThrough(Default::default()));
        }
        if !self.listen.ip().is_loopback() && !self.public {
            anyhow::bail!(
                "refusing to serve every SBOM and vulnerability list on {} to whoever reaches it: pass --auth pass-through (each caller's registry credentials) or --auth token, or --public if that exposure is intended",
                self.listen
            );
        }
        Ok(Access::Open)
    }

    /// Runs the server until Ctrl-C or SIGTERM.
    pub async fn run(self) -> anyhow::Result<u8> {
        // Before anything opens descriptors: the cap depends on how many there may be.
        let limits = self.server.limits().for_this_process();
        let registry = parse_registry(&self.registry)?;
        if self.require_signature && self.key.is_empty() {
            anyhow::bail!("--require-signature needs the public key(s) to verify with: pass --key");
        }
        let cache = CacheConfig {
            ttl: self.cache_ttl,
            max_bytes: self.cache_mib * 1024 * 1024 / CACHES,
        };
        // A verdict lives as long as the referrer list it was read from.
        let trust = if self.key.is_empty() {
            tracing::warn!(target: super::STATUS,
                "refcat: no --key: signatures are NOT checked; every view marks what it shows as not-checked");
            Trust::show_unverified()
        } else {
            Trust::checking(load_public_keys(&self.key)?, self.require_signature)?
                .recheck_after(cache.ttl)
        };
        let access = self.access()?;
        let mut config = self.registry_args.config(&registry)?;
        config.cache = Some(cache);
        if let Access::PassThrough(_) = access {
            // Nobody reads with refcat's own credentials: this client answers /readyz
            // and holds the content callers share once they proved access.
            config.credentials = Credentials::Anonymous;
            config.for_caller = true;
        }
        let client = Client::new(config);
        super::check_registry(&client).await?;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        tracing::info!(target: super::STATUS,
            "refcat: serving the catalog of {registry} on http://{}",
            listener.local_addr()?
        );
        let state = AppState {
            client,
            cache: ViewCache::new(cache),
            default_tag: self.default_tag,
            trust: trust.clone(),
            http: Default::default(),
            repositories: self
                .repositories
                .repositories(self.aggregate_repository, trust.clone())?,
            packages: PackageCache::new(cache),
            access,
        };
        crate::server::serve(listener, router(state), limits, super::termination())
            .await
            .context("the HTTP server failed")?;
        Ok(0)
    }
}
