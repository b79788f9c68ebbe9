//! Bounds on the HTTP servers of `serve` and `worker`.

use std::time::Duration;

use clap::Args;

use crate::server::Limits;

/// How much a client may hold on to.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Connections served at once; more wait to be accepted.
    #[arg(
        long,
        default_value_t = 1024,
        env = "REFCAT_MAX_CONNECTIONS",
        value_name = "N"
    )]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers before its connection is
    /// closed.
    #[arg(
        long,
        default_value_t = 10,
        env = "REFCAT_HEADER_TIMEOUT",
        value_name = "SECONDS"
    )]
    pub header_timeout: u64,
    /// Seconds a request may take in all, its body included (503 after that): a view
    /// behind a stuck registry fails within this, whatever the registry client's retries.
    #[arg(
        long,
        default_value_t = 30,
        env = "REFCAT_REQUEST_TIMEOUT",
        value_name = "SECONDS"
    )]
    pub request_timeout: u64,
}

impl ServerArgs {
    /// The limits these options describe.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections.max(1),
            header_timeout: Duration::from_secs(self.header_timeout.max(1)),
            request_timeout: Duration::from_secs(self.request_timeout.max(1)),
        }
    }
}
