//! The worker's HTTP side: `POST /events` takes webhooks (authenticated, size-limited,
//! parsed whole before anything is queued), `/healthz`, and `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::auth::{AuthError, WebhookSecret};
use super::events;
use super::job::JobContext;
use super::queue::{Enqueued, JobQueue};

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct Intake {
    /// Where jobs go.
    pub queue: JobQueue,
    /// What webhooks must prove; `None` takes no webhooks (`--no-webhooks`).
    pub secret: Option<WebhookSecret>,
    /// Webhook responses by status, for `/metrics`.
    pub responses: Arc<Mutex<BTreeMap<u16, u64>>>,
    /// The jobs' shared context: the registry client's request counts and the stats.
    pub context: Arc<JobContext>,
    /// How long an image manifest pushed by digest alone waits before its job runs.
    pub settle: Duration,
}

/// The routes; bodies over `max_body_bytes` get 413. Every answer on `/events`, 405,
/// 413 and a 503 past the request deadline included, is counted for `/metrics`.
pub fn router(intake: Intake, max_body_bytes: usize) -> Router {
    let counted = axum::middleware::from_fn_with_state(intake.clone(), count);
    Router::new()
        .route("/events", post(receive).layer(counted))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(intake)
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn count(
    State(intake): State<Intake>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    crate::server::record_status(request, next, |status| {
        *intake
            .responses
            .lock()
            .expect("responses")
            .entry(status.as_u16())
            .or_default() += 1;
    })
    .await
}

async fn receive(State(intake): State<Intake>, headers: HeaderMap, body: Bytes) -> Response {
    accept(&intake, &headers, &body).await
}

async fn accept(intake: &Intake, headers: &HeaderMap, body: &[u8]) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(secret) = &intake.secret else {
        return refuse(
            StatusCode::NOT_FOUND,
            "this worker takes no webhooks (--no-webhooks)".into(),
        );
    };
    if let Err(e) = secret.check(header, body) {
        let status = match e {
            AuthError::Missing => StatusCode::UNAUTHORIZED,
            AuthError::Wrong => StatusCode::FORBIDDEN,
        };
        tracing::warn!(%status, "webhook refused: {e}");
        return refuse(status, e.to_string());
    }
    let parsed = match events::parse(header("content-type"), header("ce-type"), body) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("webhook refused: {e}");
            return refuse(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let summary = enqueue(intake, parsed).await;
    let body = json!({
        "accepted": summary.accepted, "duplicates": summary.duplicates,
        "ignored": summary.ignored, "refused": summary.refused
    });
    if summary.refused > 0 {
        tracing::warn!(
            refused = summary.refused,
            "queue full or broker unavailable; the sender should retry (and reconcile will find them)"
        );
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, "5".parse().expect("a number"));
        return response;
    }
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// What became of the jobs of one event.
#[derive(Clone, Copy, Debug, Default)]
pub struct Enqueueing {
    /// Queued.
    pub accepted: usize,
    /// Already waiting or running.
    pub duplicates: usize,
    /// Not for an image, or outside --repository.
    pub ignored: usize,
    /// Not taken: the queue is full or the broker is unavailable.
    pub refused: usize,
}

/// Queues what an event said: an image manifest pushed by digest alone after the settle
/// delay, everything else at once.
pub async fn enqueue(intake: &Intake, parsed: events::Parsed) -> Enqueueing {
    let mut summary = Enqueueing {
        ignored: parsed.ignored,
        ..Default::default()
    };
    let settling = parsed.settling.into_iter().map(|job| (job, intake.settle));
    let now = parsed.jobs.into_iter().map(|job| (job, Duration::ZERO));
    for (job, delay) in now.chain(settling) {
        // A repository outside --repository is not this worker's; one inside it is
        // walked from now on, even where `_catalog` would not list it.
        if !intake.context.repositories.learn(&job.repository) {
            summary.ignored += 1;
            continue;
        }
        match intake.queue.push_after(job, delay).await {
            Enqueued::Added => summary.accepted += 1,
            Enqueued::Duplicate => summary.duplicates += 1,
            Enqueued::Full | Enqueued::Unavailable => summary.refused += 1,
        }
    }
    summary
}

async fn metrics(State(intake): State<Intake>) -> String {
    let mut out = String::new();
    intake.queue.write_prometheus(&mut out).await;
    out.push_str("# HELP refcat_worker_webhooks_total Webhook responses, by status.\n# TYPE refcat_worker_webhooks_total counter\n");
    for (status, n) in intake.responses.lock().expect("responses").iter() {
        let _ = writeln!(
            out,
            "refcat_worker_webhooks_total{{status=\"{status}\"}} {n}"
        );
    }
    out.push_str("# HELP refcat_worker_step_seconds Time spent in each publish step.\n# TYPE refcat_worker_step_seconds summary\n");
    for (step, (count, sum)) in intake.context.publisher.step_seconds() {
        let _ = writeln!(
            out,
            "refcat_worker_step_seconds_sum{{step=\"{step}\"}} {sum:.3}\nrefcat_worker_step_seconds_count{{step=\"{step}\"}} {count}"
        );
    }
    intake.context.stats.write_prometheus(&mut out);
    intake.context.client.counter().write_prometheus(&mut out);
    out
}
