//! Command-line definitions, one file per subcommand, and the mapping from errors to
//! exit codes. This is the only place `anyhow` is used.

mod backfill;
mod broker_args;
mod discover;
mod duration;
mod exit;
mod key;
mod key_args;
mod progress;
mod publish;
mod publisher_args;
mod registry_args;
mod repository_args;
mod serve;
mod server_args;
mod verify;
mod worker;

use clap::{Parser, Subcommand};

pub use backfill::BackfillArgs;
pub use broker_args::BrokerArgs;
pub use discover::DiscoverArgs;
pub use key::KeyArgs;
pub use publish::PublishArgs;
pub use publisher_args::PublisherArgs;
pub use registry_args::RegistryArgs;
pub use repository_args::RepositoryArgs;
pub use serve::ServeArgs;
pub use server_args::ServerArgs;
pub use verify::VerifyArgs;
pub use worker::WorkerArgs;

pub use exit::{
    exit_code, EXIT_AUTH, EXIT_NOTHING_TO_DO, EXIT_NOT_FOUND, EXIT_SCANNER, EXIT_UNAVAILABLE,
    EXIT_UNVERIFIED, EXIT_USAGE,
};

/// refcat: signed SBOM and vulnerability referrers for every image in an OCI registry,
/// and a catalog read straight from the registry.
#[derive(Debug, Parser)]
#[command(
    name = "refcat",
    version,
    about,
    long_about = None,
    after_help = "Every option can also be set in the environment: --some-option as REFCAT_SOME_OPTION."
)]
pub struct Cli {
    /// Log more (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, env = "REFCAT_VERBOSE", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How log lines on standard error are written: text for people, json (one object a
    /// line) for log collectors.
    #[arg(long, global = true, env = "REFCAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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

/// Asks the registry once before a server starts. A certificate refcat does not trust
/// will not fix itself, so it stops the start with the error that says what to pass;
/// anything else (a registry still starting, credentials that callers bring) is only
/// logged.
pub(crate) async fn check_registry(client: &crate::registry::Client) -> anyhow::Result<()> {
    let asked = tokio::time::timeout(std::time::Duration::from_secs(3), client.ping()).await;
    match asked {
        Ok(Err(e @ crate::registry::RegistryError::Certificate { .. })) => Err(e.into()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the registry did not answer as expected at start; going on");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(registry = %client.registry(), "the registry did not answer within 3 s at start; going on");
            Ok(())
        }
        Ok(Ok(())) => Ok(()),
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

/// How a command prints its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// For people: lines, a table or a tree.
    #[value(alias = "table", alias = "tree")]
    Text,
    /// JSON, for programs.
    Json,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The log target of the status lines `serve` and `worker` write (listening, stopping),
/// shown by default.
pub(crate) const STATUS: &str = "refcat::status";

/// Says why refcat stops: a line on stderr, or with JSON logs, a JSON log line like every
/// other.
pub fn report_failure(err: &anyhow::Error, format: LogFormat) {
    match format {
        LogFormat::Text => eprintln!("refcat: {err:#}"),
        LogFormat::Json => {
            tracing::error!(target: STATUS, exit_code = exit_code(err), "refcat: {err:#}")
        }
    }
}

/// Sets up logging to stderr.
pub fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn,refcat::status=info",
        1 => "refcat=debug,info",
        _ => "refcat=trace,debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every option of every subcommand, as `(subcommand path, long name, env)`.
    fn options(
        command: &clap::Command,
        path: &str,
        out: &mut Vec<(String, String, Option<String>)>,
    ) {
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if ["help", "version"].contains(&long) {
                continue;
            }
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            out.push((path.to_string(), long.to_string(), env));
        }
        for sub in command.get_subcommands() {
            options(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_option_has_an_environment_variable_named_after_it() {
        let mut all = Vec::new();
        options(&super::Cli::command(), "refcat", &mut all);
        assert!(all.len() > 50, "{} options", all.len());
        for (path, long, env) in all {
            let expected = format!("REFCAT_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(env.as_deref(), Some(expected.as_str()), "{path} --{long}");
        }
    }

    #[test]
    fn the_examples_set_only_variables_refcat_reads() {
        let mut all = Vec::new();
        options(&super::Cli::command(), "refcat", &mut all);
        let mut known: std::collections::BTreeSet<String> =
            all.into_iter().filter_map(|(_, _, env)| env).collect();
        known.extend(
            ["REFCAT_PASSWORD", "REFCAT_NATS_PASSWORD", "REFCAT_REGISTRY"].map(String::from),
        );
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("REFCAT_") {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                if name.ends_with('_') {
                    continue; // `REFCAT_*`, said of them all
                }
                assert!(known.contains(&name), "{}: {name}", path.display());
                seen += 1;
            }
        }
        assert!(seen > 10, "{seen}");
    }

    #[test]
    fn every_subcommand_lists_its_exit_codes() {
        let mut cli = super::Cli::command();
        cli.build();
        for sub in cli.get_subcommands().filter(|s| s.get_name() != "help") {
            let help = sub.clone().render_help().to_string();
            assert!(help.contains("Exit codes:"), "{}: {help}", sub.get_name());
        }
    }

    #[test]
    fn formats_and_durations_read_the_old_spellings_too() {
        use clap::Parser as _;
        let cli = super::Cli::try_parse_from([
            "refcat",
            "verify",
            "r.example/a:1",
            "--key",
            "k.pub",
            "--output",
            "table",
        ])
        .unwrap();
        let super::Command::Verify(verify) = cli.command else {
            panic!()
        };
        assert_eq!(verify.format, super::OutputFormat::Text);
        assert_eq!(verify.registry.timeout, std::time::Duration::from_secs(30));
        let cli = super::Cli::try_parse_from([
            "refcat",
            "discover",
            "r.example/a:1",
            "--format",
            "tree",
            "--timeout",
            "2m",
        ])
        .unwrap();
        let super::Command::Discover(discover) = cli.command else {
            panic!()
        };
        assert_eq!(
            discover.registry.timeout,
            std::time::Duration::from_secs(120)
        );
        assert!(super::Cli::try_parse_from([
            "refcat",
            "discover",
            "r.example/a:1",
            "--timeout",
            "2x"
        ])
        .is_err());
    }
}
