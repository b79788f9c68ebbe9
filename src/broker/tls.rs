//! How the connection to the broker is secured: the CA that signs the broker's
//! certificate, the client certificate a broker may ask for, and when TLS is required.
//! Credentials go to a broker on another machine only over TLS, unless the operator
//! says otherwise.

use std::path::{Path, PathBuf};

use async_nats::ConnectOptions;

use super::{BrokerCredentials, BrokerError};
use crate::handshake::{handshake, Handshake};

/// TLS to the broker.
#[derive(Clone, Debug, Default)]
pub struct BrokerTls {
    /// CA certificates (PEM) that sign the broker's certificate, trusted instead of the
    /// system's.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its private key (PEM), for a broker that asks for one.
    pub client: Option<(PathBuf, PathBuf)>,
    /// `Some(true)`: always TLS. `Some(false)`: TLS only when the broker asks for it, so
    /// credentials may cross the network in clear text. `None`: TLS also whenever
    /// credentials go to a broker that is not on this machine.
    pub require: Option<bool>,
}

/// Whether refcat requires TLS of a connection, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Required {
    /// Only if the broker asks for it.
    No,
    /// `--nats-require-tls`.
    Asked,
    /// Credentials would go to another machine.
    ForCredentials,
}

impl BrokerTls {
    /// Whether TLS is required to send `credentials` to the broker at `url`.
    pub(super) fn required(&self, credentials: &BrokerCredentials, url: &str) -> Required {
        match self.require {
            Some(true) => Required::Asked,
            Some(false) => Required::No,
            None if !matches!(credentials, BrokerCredentials::None) && !on_this_machine(url) => {
                Required::ForCredentials
            }
            None => Required::No,
        }
    }

    /// `options` with this TLS. The files are opened first, so that a missing one is
    /// named before anything is sent.
    pub(super) fn apply(
        &self,
        mut options: ConnectOptions,
        required: Required,
    ) -> Result<ConnectOptions, BrokerError> {
        if required != Required::No {
            options = options.require_tls(true);
        }
        if let Some(ca) = &self.ca_file {
            readable(ca)?;
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((certificate, key)) = &self.client {
            readable(certificate)?;
            readable(key)?;
            options = options.add_client_certificate(certificate.clone(), key.clone());
        }
        Ok(options)
    }
}

fn readable(path: &Path) -> Result<(), BrokerError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| BrokerError::TlsFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Whether every server `url` names (`nats://host:port`, several separated by commas,
/// the scheme optional) is this machine.
pub(super) fn on_this_machine(url: &str) -> bool {
    url.split(',').all(|server| {
        let server = server.trim();
        let server = match server.contains("://") {
            true => server.to_string(),
            false => format!("nats://{server}"),
        };
        // `nats:` is no special scheme to the URL parser: an address is left as text.
        let Some(host) = url::Url::parse(&server)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        else {
            return false;
        };
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// Why connecting to the broker at `url` failed, and what to do when TLS was the matter.
pub(super) fn connect_error(
    url: &str,
    error: &async_nats::ConnectError,
    required: Required,
) -> BrokerError {
    let reason = super::streams::error_chain(error);
    let hint = match (handshake(error), required) {
        (Handshake::Untrusted(_), _) => {
            "the broker's certificate is not trusted: give the CA that signed it with --nats-ca-file"
        }
        (Handshake::NotTls, Required::ForCredentials) => {
            "the broker does not speak TLS, and refcat sends credentials to a broker on another machine only over TLS: set up TLS on the broker (nats-server --tls), or pass --nats-require-tls=false to send them in clear text"
        }
        (Handshake::NotTls, _) => "the broker does not speak TLS, which --nats-require-tls asks for",
        (Handshake::CertificateRefused(_), _) => {
            "the broker asks for a client certificate it trusts: give one with --nats-tls-cert and --nats-tls-key"
        }
        _ if error.kind() == async_nats::ConnectErrorKind::Tls => {
            "check --nats-ca-file, --nats-tls-cert and --nats-tls-key"
        }
        _ => {
            return BrokerError::Connect {
                url: url.to_string(),
                reason,
            }
        }
    };
    BrokerError::Tls {
        url: url.to_string(),
        reason,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn credentials_go_to_a_broker_on_another_machine_only_over_tls() {
        let password = BrokerCredentials::UserPassword {
            user: "refcat".into(),
            password: Secret::new("s3cret"),
        };
        let nkey = BrokerCredentials::NkeyFile("refcat.nk".into());
        let default = BrokerTls::default();
        for remote in [
            "nats://broker.example:4222",
            "nats://192.0.2.7:4222",
            "broker.example:4222",
            "nats://[2001:db8::1]:4222",
            "nats://127.0.0.1:4222,nats://broker.example:4222",
            "not a url",
        ] {
            assert_eq!(
                default.required(&password, remote),
                Required::ForCredentials,
                "{remote}"
            );
        }
        assert_eq!(
            default.required(&nkey, "nats://broker.example:4222"),
            Required::ForCredentials
        );
        for local in [
            "nats://127.0.0.1:4222",
            "nats://localhost:4222",
            "nats://[::1]:4222",
            "127.0.0.1:4222",
        ] {
            assert_eq!(default.required(&password, local), Required::No, "{local}");
        }
        let remote = "nats://broker.example:4222";
        assert_eq!(
            default.required(&BrokerCredentials::None, remote),
            Required::No
        );
        let never = BrokerTls {
            require: Some(false),
            ..BrokerTls::default()
        };
        assert_eq!(never.required(&password, remote), Required::No);
        let always = BrokerTls {
            require: Some(true),
            ..BrokerTls::default()
        };
        assert_eq!(
            always.required(&BrokerCredentials::None, "nats://127.0.0.1:4222"),
            Required::Asked
        );
    }
}
