//! `refcat serve`: the catalog API over one registry.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Args;

use super::RegistryArgs;
use crate::api::{router, AppState};
use crate::reference::parse_registry;

/// Serve the container catalog of a registry over HTTP, read live from its tags and
/// referrers (no database).
///
/// Routes: /v1/images/{name}/tags, /v1/images/{name}/details/{tag},
/// /v1/images/{name}/sbom/{tag}, /v1/images/{name}/vulnerabilities/{tag},
/// /v1/images/{name}/releases/{digest}/details|sbom|vulnerabilities, /healthz, /readyz.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The registry (host[:port]).
    pub registry: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "REFCAT_LISTEN")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

impl ServeArgs {
    /// Runs the server until Ctrl-C or SIGTERM.
    pub async fn run(self) -> anyhow::Result<u8> {
        let registry = parse_registry(&self.registry)?;
        let client = self.registry_args.client(&registry)?;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        eprintln!(
            "refcat: serving the catalog of {registry} on http://{}",
            listener.local_addr()?
        );
        axum::serve(listener, router(AppState { client }))
            .with_graceful_shutdown(shutdown())
            .await
            .context("the HTTP server failed")?;
        Ok(0)
    }
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler installs");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
