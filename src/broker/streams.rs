//! The jobs stream, and the stream zot's events arrive on.
//!
//! **Jobs** (`REFCAT_JOBS`, work-queue retention, file storage): one subject per job key
//! with at most one message on it and new ones refused (discard-new per subject), so a
//! job that waits or runs is never queued twice, by any replica; the message id is the
//! key, so the broker also drops repeats within its duplicate window after the job is
//! done. One durable pull consumer serves every replica; each fetches only as many jobs
//! as it has free slots, and acks each explicitly.
//!
//! **Events** (`REFCAT_EVENTS`, limits retention, a day): what zot's NATS sink publishes
//! (core NATS, no ids), kept until a replica turned it into jobs.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::message::{AckKind, PublishMessage};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::StreamExt as _;

use super::{jetstream_code, BrokerConfig, BrokerError};

/// The jobs stream's name.
pub const JOBS: &str = "REFCAT_JOBS";
/// Subjects of the jobs stream: one per job key.
const JOB_SUBJECTS: &str = "refcat.jobs.>";
/// The consumer every replica shares.
const WORKERS: &str = "refcat-workers";
/// The events stream's name.
pub const EVENTS: &str = "REFCAT_EVENTS";
/// The consumer that turns events into jobs, shared by every replica.
const EVENT_READERS: &str = "refcat-events";

/// How long the broker remembers a job's message id after it was stored: long enough
/// for a sender's burst of the same event, short enough that an event after a job that
/// ended unfinished is taken again soon (while a job waits or runs, the per-subject
/// limit refuses its repeats however late they come).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(10);
/// Jobs older than this are dropped: the reconcile walk finds them again.
const JOB_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Events older than this are dropped.
const EVENT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How long a fetch waits for jobs before it asks again.
const FETCH_EXPIRES: Duration = Duration::from_secs(2);

/// What the broker did with a published job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Stored: it will run.
    Stored,
    /// The same job waits or runs, or ran moments ago: nothing more to do.
    Duplicate,
    /// The stream is full; the sender should try again later.
    Full,
}

/// The jobs stream and its consumer.
#[derive(Clone, Debug)]
pub struct JobStream {
    context: jetstream::Context,
    stream: stream::Stream,
    consumer: PullConsumer,
}

/// What waits and runs, as the broker counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    /// Jobs stored: waiting or running.
    pub messages: u64,
    /// Delivered jobs not yet acked (running, or delayed by a nak).
    pub ack_pending: u64,
    /// Jobs delivered more than once, as the consumer counts them now.
    pub redelivered: u64,
}

impl JobStream {
    pub(super) async fn ensure(
        context: &jetstream::Context,
        config: &BrokerConfig,
    ) -> Result<JobStream, BrokerError> {
        let stream = create_stream(
            context,
            stream::Config {
                name: JOBS.into(),
                subjects: vec![JOB_SUBJECTS.into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                max_messages_per_subject: 1,
                discard: stream::DiscardPolicy::New,
                discard_new_per_subject: true,
                max_messages: config.capacity,
                max_age: JOB_MAX_AGE,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            },
        )
        .await?;
        let consumer = create_consumer(&stream, WORKERS, config.ack_wait).await?;
        Ok(JobStream {
            context: context.clone(),
            stream,
            consumer,
        })
    }

    /// Publishes a job on the subject of its key, with `id` as its message id, and
    /// waits for the broker's answer: only a stored job is one that will run.
    pub async fn publish(
        &self,
        key: &str,
        id: &str,
        payload: Bytes,
        headers: &[(&'static str, String)],
    ) -> Result<Published, BrokerError> {
        let mut message = PublishMessage::build().payload(payload).message_id(id);
        for (name, value) in headers {
            message = message.header(*name, value.as_str());
        }
        let subject = format!("refcat.jobs.{}", subject_token(key));
        let answer = match self.context.send_publish(subject.clone(), message).await {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(ack) if ack.duplicate => Ok(Published::Duplicate),
            Ok(_) => Ok(Published::Stored),
            Err(e) if jetstream_code(&e) == Some(jetstream::ErrorCode::STREAM_STORE_FAILED) => {
                // The broker refuses a job whose subject holds one already and a job
                // beyond the stream's capacity with the same code: the subject tells.
                match self.stream.get_last_raw_message_by_subject(&subject).await {
                    Ok(_) => Ok(Published::Duplicate),
                    Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                        Ok(Published::Full)
                    }
                    Err(e) => Err(BrokerError::failed("publishing a job", error_chain(&e))),
                }
            }
            Err(e) => Err(BrokerError::failed("publishing a job", error_chain(&e))),
        }
    }

    /// Up to `n` jobs, waiting a moment for them; fewer or none when there are not so
    /// many.
    pub async fn fetch(&self, n: usize) -> Result<Vec<Delivery>, BrokerError> {
        fetch(&self.consumer, n).await
    }

    /// What waits and runs.
    pub async fn depth(&self) -> Result<Depth, BrokerError> {
        let consumer = self
            .consumer
            .get_info()
            .await
            .map_err(|e| BrokerError::failed("reading the jobs consumer", e))?;
        let mut stream = self
            .context
            .get_stream(JOBS)
            .await
            .map_err(|e| BrokerError::failed("reading the jobs stream", e))?;
        let info = stream
            .info()
            .await
            .map_err(|e| BrokerError::failed("reading the jobs stream", e))?;
        Ok(Depth {
            messages: info.state.messages,
            ack_pending: consumer.num_ack_pending as u64,
            redelivered: consumer.num_redelivered as u64,
        })
    }
}

/// The events stream and its consumer.
#[derive(Clone, Debug)]
pub struct EventStream {
    consumer: PullConsumer,
}

impl EventStream {
    pub(super) async fn ensure(
        context: &jetstream::Context,
        subject: &str,
    ) -> Result<EventStream, BrokerError> {
        let stream = create_stream(
            context,
            stream::Config {
                name: EVENTS.into(),
                subjects: vec![subject.into()],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                max_age: EVENT_MAX_AGE,
                ..Default::default()
            },
        )
        .await?;
        let consumer = create_consumer(&stream, EVENT_READERS, Duration::from_secs(30)).await?;
        Ok(EventStream { consumer })
    }

    /// Up to `n` events.
    pub async fn fetch(&self, n: usize) -> Result<Vec<Delivery>, BrokerError> {
        fetch(&self.consumer, n).await
    }
}

async fn create_stream(
    context: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, BrokerError> {
    let name = config.name.clone();
    context
        .create_stream(config)
        .await
        .map_err(|e| BrokerError::creating(format!("the stream {name}"), &e))
}

async fn create_consumer(
    stream: &stream::Stream,
    name: &str,
    ack_wait: Duration,
) -> Result<PullConsumer, BrokerError> {
    let config = pull::Config {
        durable_name: Some(name.into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        // refcat counts attempts itself and ends a job with a term: the broker never
        // keeps one past its attempts, where it would block its subject.
        max_deliver: -1,
        max_ack_pending: 10_000,
        ..Default::default()
    };
    stream
        .create_consumer_strict(config)
        .await
        .map_err(|e| BrokerError::creating(format!("the consumer {name}"), &e))
}

async fn fetch(consumer: &PullConsumer, n: usize) -> Result<Vec<Delivery>, BrokerError> {
    let mut batch = consumer
        .fetch()
        .max_messages(n.max(1))
        .expires(FETCH_EXPIRES)
        .messages()
        .await
        .map_err(|e| BrokerError::failed("fetching", error_chain(&e)))?;
    let mut out = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.map_err(|e| BrokerError::failed("fetching", error_chain(&*e)))?;
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let headers = message
            .headers
            .iter()
            .flat_map(|h| h.iter())
            .filter_map(|(name, values)| {
                Some((name.to_string(), values.first()?.as_str().to_string()))
            })
            .collect();
        let payload = message.payload.clone();
        let (_, acker) = message.split();
        out.push(Delivery {
            payload,
            headers,
            delivered,
            acker: Arc::new(acker),
        });
    }
    Ok(out)
}

/// One delivered message: what it carries, how often it was delivered, and how to
/// settle it.
pub struct Delivery {
    /// The body.
    pub payload: Bytes,
    /// The headers, a value each.
    pub headers: Vec<(String, String)>,
    /// 1 the first time, more when redelivered.
    pub delivered: i64,
    acker: Arc<jetstream::message::Acker>,
}

/// Reports a delivery's progress from another task.
#[derive(Clone)]
pub struct Progress(Arc<jetstream::message::Acker>);

impl Progress {
    /// Still at it: the ack wait starts again.
    pub async fn report(&self) -> Result<(), BrokerError> {
        self.0
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| BrokerError::failed("reporting progress", e))
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Done: the broker confirms, and the job leaves the stream.
    pub async fn ack(&self) -> Result<(), BrokerError> {
        self.acker
            .double_ack()
            .await
            .map_err(|e| BrokerError::failed("acking a job", e))
    }

    /// What reports this delivery's progress while its job runs.
    pub fn progress(&self) -> Progress {
        Progress(self.acker.clone())
    }

    /// Not now: deliver it again after `delay`, to any replica.
    pub async fn retry_after(&self, delay: Duration) -> Result<(), BrokerError> {
        self.acker
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|e| BrokerError::failed("handing a job back", e))
    }

    /// Never again: the job leaves the stream unfinished.
    pub async fn give_up(&self) -> Result<(), BrokerError> {
        self.acker
            .ack_with(AckKind::Term)
            .await
            .map_err(|e| BrokerError::failed("ending a job", e))
    }
}

/// A subject token for a job key: repository names hold `.` and `/`, which subjects
/// cannot carry, so the key's hash stands for it.
fn subject_token(key: &str) -> String {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(key.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An error and its sources, as one line.
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_becomes_one_subject_token() {
        let token = subject_token("team/app.web:1.0@sha256:abc");
        assert_eq!(token.len(), 32);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(token, subject_token("team/app.web:1.0@sha256:abc"));
        assert_ne!(token, subject_token("team/app.web:1.1@sha256:abc"));
    }
}
