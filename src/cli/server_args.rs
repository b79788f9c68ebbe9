//! Bounds on the HTTP servers of `serve` and `worker`.

use std::time::Duration;

use clap::Args;

use crate::server::Limits;

/// How much a client may hold on to.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Connections served at once; at the cap a new one takes the place of the one idle
    /// longest. At start the soft limit on open descriptors is raised to the hard
    /// limit, and this is lowered (with a warning) to leave 256 of them for registry
    /// connections, scanners and scratch files: to at most 768 under a limit of 1,024.
    #[arg(
        long,
        default_value_t = 1024,
        env = "REFCAT_MAX_CONNECTIONS",
        value_name = "N"
    )]
    pub max_connections: usize,
    /// How long a client has to send a request's headers before its connection is
    /// closed.
    #[arg(long, default_value = "10s", env = "REFCAT_HEADER_TIMEOUT", value_parser = super::duration::parse, value_name = "DURATION")]
    pub header_timeout: Duration,
    /// How long a request may take in all, its body included (503 after that): a view
    /// behind a stuck registry fails within this, whatever the registry client's retries.
    #[arg(long, default_value = "30s", env = "REFCAT_REQUEST_TIMEOUT", value_parser = super::duration::parse, value_name = "DURATION")]
    pub request_timeout: Duration,
}

impl ServerArgs {
    /// The limits these options describe.
    pub fn limits(&self) -> Limits {
        let at_least = Duration::from_millis(100);
        Limits {
            max_connections: self.max_connections.max(1),
            header_timeout: self.header_timeout.max(at_least),
            request_timeout: self.request_timeout.max(at_least),
        }
    }
}
