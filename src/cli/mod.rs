//! Command-line definitions, one file per subcommand, and the mapping from errors to
//! exit codes. This is the only place `anyhow` is used.

mod backfill;
mod discover;
mod key;
mod key_args;
mod publish;
mod publisher_args;
mod registry_args;
mod serve;
mod server_args;
mod verify;
mod worker;

use clap::{Parser, Subcommand};

pub use backfill::BackfillArgs;
pub use discover::DiscoverArgs;
pub use key::KeyArgs;
pub use publish::PublishArgs;
pub use publisher_args::PublisherArgs;
pub use registry_args::RegistryArgs;
pub use serve::ServeArgs;
pub use server_args::ServerArgs;
pub use verify::VerifyArgs;
pub use worker::WorkerArgs;

use crate::catalog::platforms::ResolveError;
use crate::catalog::referrers_tree::TreeError;
use crate::publish::PublishError;
use crate::reference::ReferenceError;
use crate::registry::RegistryError;

/// Exit code for bad input (also clap's).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the thing asked for does not exist.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code when the registry refused the credentials.
pub const EXIT_AUTH: u8 = 4;
/// Exit code when the registry is unreachable or failing.
pub const EXIT_UNAVAILABLE: u8 = 5;
/// Exit code when syft or grype failed.
pub const EXIT_SCANNER: u8 = 6;
/// Exit code when an artifact is unsigned or its signature does not verify.
pub const EXIT_UNVERIFIED: u8 = 7;
/// Exit code of `publish` when everything was already there.
pub const EXIT_NOTHING_TO_DO: u8 = 10;

/// refcat: signed SBOM and vulnerability referrers for every image in an OCI registry,
/// and a catalog read straight from the registry.
#[derive(Debug, Parser)]
#[command(name = "refcat", version, about, long_about = None)]
pub struct Cli {
    /// Log more (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the referrers tree of an image, like `oras discover`.
    Discover(DiscoverArgs),
    /// Attach signed SBOM and vulnerability referrers to images.
    Publish(Box<PublishArgs>),
    /// Verify the signatures of an image's refcat artifacts.
    Verify(VerifyArgs),
    /// Manage cosign-compatible signing keys.
    Key(KeyArgs),
    /// Serve the catalog API, read live from the registry.
    Serve(ServeArgs),
    /// Publish continuously: on registry webhooks and on a periodic walk.
    Worker(Box<WorkerArgs>),
    /// Walk the whole registry once and publish whatever is missing.
    Backfill(Box<BackfillArgs>),
}

impl Cli {
    /// Runs the chosen subcommand; the exit code on success.
    pub async fn run(self) -> anyhow::Result<u8> {
        match self.command {
            Command::Discover(args) => args.run().await.map(|()| 0),
            Command::Publish(args) => args.run().await,
            Command::Verify(args) => args.run().await,
            Command::Key(args) => args.run(),
            Command::Serve(args) => args.run().await,
            Command::Worker(args) => args.run().await,
            Command::Backfill(args) => args.run().await,
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM: the signal to stop taking work and drain.
pub(crate) async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler installs");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Sets up logging to stderr.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "refcat=debug,info",
        _ => "refcat=trace,debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The registry error inside `cause`, looking through the wrappers that show it
/// transparently (and so hide it from `anyhow`'s chain).
fn registry_error_in<'a>(
    cause: &'a (dyn std::error::Error + 'static),
) -> Option<&'a RegistryError> {
    let resolve = |e: &'a ResolveError| match e {
        ResolveError::Registry(e) => Some(e),
        _ => None,
    };
    cause
        .downcast_ref::<RegistryError>()
        .or_else(|| match cause.downcast_ref::<TreeError>() {
            Some(TreeError::Registry(e)) => Some(e),
            _ => None,
        })
        .or_else(|| cause.downcast_ref::<ResolveError>().and_then(resolve))
        .or_else(|| match cause.downcast_ref::<PublishError>() {
            Some(PublishError::Registry(e) | PublishError::NotWritable { source: e, .. }) => {
                Some(e)
            }
            Some(PublishError::Resolve(e)) => resolve(e),
            _ => None,
        })
}

/// The exit code for an error: 2 bad input, 3 not found (also: no such platform), 4 auth,
/// 5 registry unavailable, 6 a scanner failed, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<ReferenceError>()
            || cause.is::<crate::oci::PlatformError>()
            || cause.is::<crate::digest::DigestError>()
        {
            return EXIT_USAGE;
        }
        if matches!(
            cause.downcast_ref::<PublishError>(),
            Some(PublishError::Scan(_))
        ) || cause.is::<crate::scan::ScanError>()
        {
            return EXIT_SCANNER;
        }
        if matches!(
            cause.downcast_ref::<ResolveError>(),
            Some(ResolveError::NoPlatform { .. })
        ) || matches!(
            cause.downcast_ref::<PublishError>(),
            Some(PublishError::Resolve(ResolveError::NoPlatform { .. }))
        ) {
            return EXIT_NOT_FOUND;
        }
        let registry_error = registry_error_in(cause);
        if let Some(e) = registry_error {
            return match e {
                RegistryError::NotFound { .. } => EXIT_NOT_FOUND,
                RegistryError::Unauthorized { .. } | RegistryError::Forbidden { .. } => EXIT_AUTH,
                RegistryError::Unavailable { .. }
                | RegistryError::Timeout { .. }
                | RegistryError::Interrupted { .. }
                | RegistryError::Connect { .. } => EXIT_UNAVAILABLE,
                _ => 1,
            };
        }
    }
    1
}
