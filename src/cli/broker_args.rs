//! How `worker` replicas reach the NATS broker they share work through.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::broker::{shown_url, BrokerConfig, BrokerCredentials, BrokerTls};
use crate::secret::Secret;

/// Options for sharing work between worker replicas on NATS JetStream. `Debug` shows
/// the URL without the credentials it may carry.
#[derive(Args)]
pub struct BrokerArgs {
    /// Share jobs with every worker replica on this NATS broker (JetStream enabled):
    /// `nats://host:4222` (credentials may go in it: `nats://user:password@host:4222`,
    /// `nats://token@host:4222`). Without it, this process keeps its own queue.
    #[arg(
        long,
        env = "REFCAT_NATS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub nats_url: Option<String>,
    /// A NATS `.creds` file (JWT and nkey seed), as `nsc` writes it.
    #[arg(
        long,
        env = "REFCAT_NATS_CREDS",
        value_name = "FILE",
        requires = "nats_url"
    )]
    pub nats_creds: Option<PathBuf>,
    /// A file holding a NATS nkey seed.
    #[arg(
        long,
        env = "REFCAT_NATS_NKEY",
        value_name = "FILE",
        requires = "nats_url",
        conflicts_with = "nats_creds"
    )]
    pub nats_nkey: Option<PathBuf>,
    /// A NATS user; the password comes from REFCAT_NATS_PASSWORD.
    #[arg(long, env = "REFCAT_NATS_USER", value_name = "USER", requires = "nats_url", conflicts_with_all = ["nats_creds", "nats_nkey"])]
    pub nats_user: Option<String>,
    /// CA certificates (PEM) that sign the broker's TLS certificate, trusted instead of
    /// the system's.
    #[arg(
        long,
        env = "REFCAT_NATS_CA_FILE",
        value_name = "FILE",
        requires = "nats_url"
    )]
    pub nats_ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for a broker that asks for one; its key goes in
    /// --nats-tls-key.
    #[arg(long, env = "REFCAT_NATS_TLS_CERT", value_name = "FILE", requires_all = ["nats_url", "nats_tls_key"])]
    pub nats_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --nats-tls-cert.
    #[arg(
        long,
        env = "REFCAT_NATS_TLS_KEY",
        value_name = "FILE",
        requires = "nats_tls_cert"
    )]
    pub nats_tls_key: Option<PathBuf>,
    /// Require TLS to the broker; `--nats-require-tls=false` requires it only when the
    /// broker does. Unset, TLS is required whenever credentials go to a broker that is not
    /// on this machine, so that they never cross the network in clear text.
    #[arg(
        long,
        env = "REFCAT_NATS_REQUIRE_TLS",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        requires = "nats_url"
    )]
    pub nats_require_tls: Option<bool>,
    /// How long a job may run without the broker hearing from its replica before it is
    /// handed to another (running jobs report progress every third of it).
    #[arg(long, env = "REFCAT_NATS_ACK_WAIT", default_value = "60s", value_parser = super::duration::parse, value_name = "DURATION")]
    pub nats_ack_wait: Duration,
    /// Read zot's events from this NATS subject (zot's `extensions.events.sinks[]` of
    /// type `nats`, its `channel`) and turn them into jobs.
    #[arg(
        long,
        env = "REFCAT_NATS_EVENTS_SUBJECT",
        value_name = "SUBJECT",
        requires = "nats_url"
    )]
    pub nats_events_subject: Option<String>,
}

impl std::fmt::Debug for BrokerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerArgs")
            .field("nats_url", &self.nats_url.as_deref().map(shown_url))
            .field("nats_creds", &self.nats_creds)
            .field("nats_nkey", &self.nats_nkey)
            .field("nats_user", &self.nats_user)
            .field("nats_ca_file", &self.nats_ca_file)
            .field("nats_tls_cert", &self.nats_tls_cert)
            .field("nats_tls_key", &self.nats_tls_key)
            .field("nats_require_tls", &self.nats_require_tls)
            .field("nats_ack_wait", &self.nats_ack_wait)
            .field("nats_events_subject", &self.nats_events_subject)
            .finish()
    }
}

impl BrokerArgs {
    /// The broker to share work through, if one is named; a stream holds `capacity`
    /// jobs at most.
    pub fn config(&self, capacity: usize) -> anyhow::Result<Option<BrokerConfig>> {
        let Some(url) = &self.nats_url else {
            return Ok(None);
        };
        let credentials = match (&self.nats_creds, &self.nats_nkey, &self.nats_user) {
            (Some(path), _, _) => BrokerCredentials::CredsFile(path.clone()),
            (_, Some(path), _) => BrokerCredentials::NkeyFile(path.clone()),
            (_, _, Some(user)) => BrokerCredentials::UserPassword {
                user: user.clone(),
                password: Secret::new(std::env::var("REFCAT_NATS_PASSWORD").map_err(|_| {
                    anyhow::anyhow!("--nats-user needs its password in REFCAT_NATS_PASSWORD")
                })?),
            },
            _ => BrokerCredentials::None,
        };
        Ok(Some(BrokerConfig {
            url: url.clone(),
            credentials,
            ack_wait: self.nats_ack_wait.max(Duration::from_secs(1)),
            capacity: capacity.try_into().unwrap_or(i64::MAX),
            events_subject: self.nats_events_subject.clone(),
            tls: BrokerTls {
                ca_file: self.nats_ca_file.clone(),
                client: self.nats_tls_cert.clone().zip(self.nats_tls_key.clone()),
                require: self.nats_require_tls,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    #[test]
    fn debug_shows_no_credentials_of_the_url() {
        let cli = crate::cli::Cli::try_parse_from([
            "refcat",
            "worker",
            "registry.example",
            "--no-webhooks",
            "--nats-url",
            "nats://refcat:s3cret@broker.example:4222",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        assert!(shown.contains("nats://broker.example:4222"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn help_shows_no_url_from_the_environment() {
        let command = <crate::cli::Cli as clap::CommandFactory>::command();
        let worker = command.find_subcommand("worker").unwrap();
        let url = worker
            .get_arguments()
            .find(|a| a.get_id() == "nats_url")
            .unwrap();
        assert!(url.is_hide_env_values_set());
    }

    #[test]
    fn require_tls_is_a_flag_that_takes_false_too() {
        let tls = |args: &[&str]| {
            let mut all = vec!["refcat", "worker", "r.example", "--no-webhooks"];
            all.extend_from_slice(args);
            let cli = crate::cli::Cli::try_parse_from(all).unwrap();
            let crate::cli::Command::Worker(worker) = cli.command else {
                panic!()
            };
            worker.broker.config(1).unwrap().unwrap().tls
        };
        let url = "--nats-url=nats://broker.example:4222";
        assert_eq!(tls(&[url]).require, None);
        assert_eq!(tls(&[url, "--nats-require-tls"]).require, Some(true));
        assert_eq!(tls(&[url, "--nats-require-tls=false"]).require, Some(false));
        let client = tls(&[url, "--nats-tls-cert", "c.pem", "--nats-tls-key", "k.pem"]).client;
        assert_eq!(client, Some(("c.pem".into(), "k.pem".into())));
        assert!(crate::cli::Cli::try_parse_from([
            "refcat",
            "worker",
            "r.example",
            "--no-webhooks",
            url,
            "--nats-tls-cert",
            "c.pem"
        ])
        .is_err());
    }
}
