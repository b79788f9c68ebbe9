//! The only code in refcat that speaks NATS. Worker replicas share their jobs through a
//! JetStream work-queue stream, take locks and leases in JetStream key-value buckets,
//! and read zot's CloudEvents from a stream bound to its NATS sink's subject. refcat
//! runs no queue of its own across machines: the broker does.
//!
//! - [`streams`]: the jobs and events streams, their consumers, publishing and fetching.
//! - [`kv`]: locks held while work runs, and schedules that let one replica of many act.
//! - [`tls`]: how the connection is secured, and when TLS is required.

pub mod kv;
pub mod streams;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use crate::secret::Secret;

pub use kv::{LockGuard, Locks, Schedule};
pub use streams::{Delivery, Depth, Progress, Published};
pub use tls::BrokerTls;

/// How to reach the broker. `Debug` shows the URL without the credentials it may carry.
#[derive(Clone)]
pub struct BrokerConfig {
    /// `nats://host:port` (credentials in it are never shown).
    pub url: String,
    /// How refcat authenticates.
    pub credentials: BrokerCredentials,
    /// How long a delivered job may go without an ack or progress before it is
    /// delivered again (to any replica).
    pub ack_wait: Duration,
    /// Jobs the stream holds at most; a publish beyond that is refused.
    pub capacity: i64,
    /// The subject zot's NATS sink publishes its CloudEvents on, when refcat reads them.
    pub events_subject: Option<String>,
    /// TLS to the broker.
    pub tls: BrokerTls,
}

impl BrokerConfig {
    /// The broker at `url`, without credentials: jobs may go 60 s without an ack or
    /// progress, the stream holds 10,000 of them, and zot's events are not read.
    pub fn new(url: impl Into<String>) -> Self {
        BrokerConfig {
            url: url.into(),
            credentials: BrokerCredentials::None,
            ack_wait: Duration::from_secs(60),
            capacity: 10_000,
            events_subject: None,
            tls: BrokerTls::default(),
        }
    }
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("url", &shown_url(&self.url))
            .field("credentials", &self.credentials)
            .field("ack_wait", &self.ack_wait)
            .field("capacity", &self.capacity)
            .field("events_subject", &self.events_subject)
            .field("tls", &self.tls)
            .finish()
    }
}

/// NATS credentials; `Debug` shows none of them.
#[derive(Clone, Debug, Default)]
pub enum BrokerCredentials {
    /// None, or only what the URL carries.
    #[default]
    None,
    /// A `.creds` file (JWT and nkey seed), as `nsc` writes it.
    CredsFile(PathBuf),
    /// A file holding an nkey seed (`SU…`).
    NkeyFile(PathBuf),
    /// User and password.
    UserPassword {
        /// The user (not secret).
        user: String,
        /// The password.
        password: Secret,
    },
    /// A token (`nats://TOKEN@host` in NATS URLs).
    Token(Secret),
}

impl BrokerCredentials {
    /// Takes the credentials out of `url` (`nats://user:password@host`, or
    /// `nats://token@host`): the URL without them, and them, if it held any. The NATS
    /// client would not send them from the URL.
    fn from_url(url: &str) -> (String, Option<BrokerCredentials>) {
        let Ok(mut parsed) = url::Url::parse(url) else {
            return (url.to_string(), None);
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let credentials = match (parsed.username(), parsed.password()) {
            ("", None) => return (url.to_string(), None),
            (user, Some(password)) => BrokerCredentials::UserPassword {
                user: decode(user),
                password: Secret::new(decode(password)),
            },
            (token, None) => BrokerCredentials::Token(Secret::new(decode(token))),
        };
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        (parsed.to_string(), Some(credentials))
    }
}

/// What went wrong with the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker cannot be reached or refused refcat.
    #[error("cannot connect to the NATS broker at {url}: {reason} (is nats-server running there with JetStream, `-js`?)")]
    Connect {
        /// The URL, without credentials.
        url: String,
        /// Why.
        reason: String,
    },
    /// TLS to the broker failed, for a reason the operator can act on.
    #[error("cannot connect to the NATS broker at {url} over TLS ({reason}): {hint}")]
    Tls {
        /// The URL, without credentials.
        url: String,
        /// What failed.
        reason: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// A CA, certificate or key file for TLS to the broker could not be read.
    #[error("cannot read {path} for TLS to the NATS broker: {reason}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Credentials could not be read.
    #[error("cannot read the NATS credentials {path}: {reason}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The URL carries credentials and others were given too.
    #[error("the NATS URL carries credentials, and so does --nats-creds, --nats-nkey or --nats-user: give them once")]
    TwoCredentials,
    /// A stream, consumer or bucket exists with another configuration.
    #[error("the broker holds {what} with another configuration than this refcat asks for ({reason}): make the replicas' options agree (--queue-capacity, --nats-ack-wait, --nats-events-subject), or delete it with the nats CLI if it is stale")]
    Conflict {
        /// Which one.
        what: String,
        /// The broker's answer.
        reason: String,
    },
    /// Any other JetStream failure: a broker that is down or restarting, a timeout.
    #[error("the NATS broker failed {what}: {reason}")]
    Failed {
        /// What refcat asked.
        what: String,
        /// The broker's answer.
        reason: String,
    },
}

impl BrokerError {
    fn failed(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        BrokerError::Failed {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// Why creating `what` (the stream X, the bucket Y) failed: a conflict when it
    /// exists with another configuration.
    fn creating(what: String, error: &(dyn std::error::Error + 'static)) -> Self {
        let reason = streams::error_chain(error);
        if is_conflict(error) {
            BrokerError::Conflict { what, reason }
        } else {
            BrokerError::failed(format!("creating {what}"), reason)
        }
    }
}

/// `url` without the user and password it may carry.
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() || !parsed.username().is_empty() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// A connection to the broker, with the streams and buckets refcat uses.
#[derive(Clone, Debug)]
pub struct Broker {
    config: BrokerConfig,
    jobs: streams::JobStream,
    events: Option<streams::EventStream>,
    locks: Locks,
    schedule: Schedule,
}

impl Broker {
    /// Connects and makes sure the streams, consumers and buckets exist as configured.
    /// A broker that is down fails at once, naming the URL.
    pub async fn connect(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let (url, in_url) = BrokerCredentials::from_url(&config.url);
        let credentials = match (in_url, &config.credentials) {
            (None, given) => given.clone(),
            (Some(in_url), BrokerCredentials::None) => in_url,
            (Some(_), _) => return Err(BrokerError::TwoCredentials),
        };
        let mut options = async_nats::ConnectOptions::new()
            .name("refcat-worker")
            .connection_timeout(Duration::from_secs(5))
            .event_callback({
                let url = url.clone();
                move |event| {
                    let url = url.clone();
                    async move {
                        match event {
                            async_nats::Event::Connected => {
                                tracing::info!(%url, "connected to the NATS broker")
                            }
                            other => tracing::warn!(%url, event = %other, "NATS broker"),
                        }
                    }
                }
            });
        options = match &credentials {
            BrokerCredentials::None => options,
            BrokerCredentials::CredsFile(path) => {
                options
                    .credentials_file(path)
                    .await
                    .map_err(|e| BrokerError::Credentials {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?
            }
            BrokerCredentials::NkeyFile(path) => {
                let seed = std::fs::read_to_string(path).map_err(|e| BrokerError::Credentials {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                options.nkey(seed.trim().to_string())
            }
            BrokerCredentials::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.expose().to_string())
            }
            BrokerCredentials::Token(token) => options.token(token.expose().to_string()),
        };
        let required = config.tls.required(&credentials, &url);
        if required == tls::Required::No
            && !matches!(credentials, BrokerCredentials::None)
            && !tls::on_this_machine(&url)
        {
            tracing::warn!(%url, "credentials go to the NATS broker in clear text unless it asks for TLS (--nats-require-tls=false)");
        }
        let client = config
            .tls
            .apply(options, required)?
            .connect(url.as_str())
            .await
            .map_err(|e| tls::connect_error(&url, &e, required))?;
        let jetstream = jetstream::new(client);
        let jobs = streams::JobStream::ensure(&jetstream, &config).await?;
        let events = match &config.events_subject {
            Some(subject) => Some(streams::EventStream::ensure(&jetstream, subject).await?),
            None => None,
        };
        let locks = Locks::ensure(&jetstream).await?;
        let schedule = Schedule::ensure(&jetstream).await?;
        Ok(Broker {
            config,
            jobs,
            events,
            locks,
            schedule,
        })
    }

    /// The jobs stream.
    pub fn jobs(&self) -> &streams::JobStream {
        &self.jobs
    }

    /// The stream of zot's events, when refcat reads them.
    pub fn events(&self) -> Option<&streams::EventStream> {
        self.events.as_ref()
    }

    /// Locks that hold across replicas.
    pub fn locks(&self) -> &Locks {
        &self.locks
    }

    /// The same locks, for what takes them without knowing the broker (the registry
    /// client's tag-schema edits, the publisher's subjects).
    pub fn shared_locks(&self) -> Arc<dyn crate::locks::SharedLocks> {
        Arc::new(self.locks.clone())
    }

    /// Schedules that let one replica act for all.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// How long a delivery may go without an ack or progress.
    pub fn ack_wait(&self) -> Duration {
        self.config.ack_wait
    }
}

/// The JetStream error code a failure carries, wherever async-nats keeps it: in the
/// error's kind (creating a stream or a consumer), or among its sources (a publish, a
/// bucket whose stream could not be created).
fn jetstream_code(error: &(dyn std::error::Error + 'static)) -> Option<jetstream::ErrorCode> {
    use jetstream::context::{CreateStreamError, CreateStreamErrorKind};
    use jetstream::stream::{ConsumerCreateStrictError, ConsumerCreateStrictErrorKind};
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(answer) = error.downcast_ref::<jetstream::Error>() {
            return Some(answer.error_code());
        }
        if let Some(e) = error.downcast_ref::<CreateStreamError>() {
            if let CreateStreamErrorKind::JetStream(answer) = e.kind() {
                return Some(answer.error_code());
            }
        }
        if let Some(e) = error.downcast_ref::<ConsumerCreateStrictError>() {
            match e.kind() {
                ConsumerCreateStrictErrorKind::AlreadyExists => {
                    return Some(jetstream::ErrorCode::CONSUMER_ALREADY_EXISTS)
                }
                ConsumerCreateStrictErrorKind::JetStream(answer) => {
                    return Some(answer.error_code())
                }
                _ => {}
            }
        }
        next = error.source();
    }
    None
}

/// Whether a JetStream failure says the stream, consumer or bucket exists with another
/// configuration.
fn is_conflict(error: &(dyn std::error::Error + 'static)) -> bool {
    use jetstream::ErrorCode;
    matches!(
        jetstream_code(error),
        Some(
            ErrorCode::STREAM_NAME_EXIST
                | ErrorCode::CONSUMER_NAME_EXIST
                | ErrorCode::CONSUMER_ALREADY_EXISTS
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_debug_show_no_credentials() {
        assert_eq!(
            shown_url("nats://refcat:s3cret@broker.example:4222"),
            "nats://broker.example:4222"
        );
        assert_eq!(shown_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        let config = BrokerConfig {
            credentials: BrokerCredentials::UserPassword {
                user: "refcat".into(),
                password: Secret::new("s3cret"),
            },
            ..BrokerConfig::new("nats://refcat:s3cret@broker.example:4222")
        };
        assert!(!format!("{config:?}").contains("s3cret"), "{config:?}");
    }

    #[tokio::test]
    async fn credentials_in_the_url_and_beside_it_are_refused_before_connecting() {
        let config = BrokerConfig {
            credentials: BrokerCredentials::NkeyFile("refcat.nk".into()),
            ..BrokerConfig::new("nats://refcat:s3cret@127.0.0.1:1")
        };
        let error = Broker::connect(config).await.unwrap_err();
        assert!(matches!(error, BrokerError::TwoCredentials), "{error}");
    }

    /// A JetStream error answer, as the broker sends it.
    fn answer(code: u64, description: &str) -> jetstream::Error {
        serde_json::from_value(serde_json::json!({
            "code": 400, "err_code": code, "description": description
        }))
        .unwrap()
    }

    #[test]
    fn conflicts_are_read_from_the_error_code_wherever_the_client_keeps_it() {
        use jetstream::context::{CreateKeyValueError, CreateKeyValueErrorKind, CreateStreamError};
        use jetstream::stream::ConsumerCreateStrictError;
        let stream = CreateStreamError::from(answer(
            10058,
            "stream name already in use with a different configuration",
        ));
        assert!(is_conflict(&stream));
        let bucket =
            CreateKeyValueError::with_source(CreateKeyValueErrorKind::BucketCreate, stream);
        assert!(is_conflict(&bucket));
        let consumer = ConsumerCreateStrictError::from(answer(10148, "consumer already exists"));
        assert!(is_conflict(&consumer));
        // The words are the broker's and may change; only the code counts.
        let other = CreateStreamError::from(answer(
            10065,
            "subjects overlap with a stream of a different configuration (error code 10058)",
        ));
        assert!(!is_conflict(&other));
    }

    #[test]
    fn credentials_in_the_url_are_taken_out_of_it() {
        let (url, credentials) =
            BrokerCredentials::from_url("nats://refcat:s%40cret@broker.example:4222");
        assert_eq!(url, "nats://broker.example:4222");
        match credentials {
            Some(BrokerCredentials::UserPassword { user, password }) => {
                assert_eq!(user, "refcat");
                assert_eq!(password.expose(), "s@cret");
            }
            other => panic!("{other:?}"),
        }
        let (url, credentials) = BrokerCredentials::from_url("nats://t0ken@broker.example");
        assert_eq!(url, "nats://broker.example");
        assert!(matches!(credentials, Some(BrokerCredentials::Token(t)) if t.expose() == "t0ken"));
        assert!(BrokerCredentials::from_url("nats://broker.example:4222")
            .1
            .is_none());
    }
}
