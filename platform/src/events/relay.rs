//! The outbox relay: publishes outbox rows in order and deletes each only after JetStream
//! acknowledged it. While NATS is away it retries with capped exponential backoff; the rows
//! simply wait. A re-publish after a lost ack carries the same `Nats-Msg-Id`, which the
//! stream's duplicate window drops.
//!
//! Every instance of a context runs a relay over the one outbox, but only the holder of the
//! context's [`RelayLease`] publishes. Two relays publishing side by side would each send a
//! row, and the duplicate window hides that only while it lasts: a relay paused past it (GC,
//! SIGSTOP, a slow disk) would send its stale batch again, after newer rows of the same
//! aggregate. The outbox has no aggregate column to claim rows by, so the whole outbox is the
//! unit: one publisher keeps each aggregate's rows in commit order.

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::{HEADER_ID, HEADER_TRACEPARENT, HEADER_TYPE, outbox::OutboxSignal};
use crate::{db::placeholders, shutdown::Shutdown};

const BATCH: u64 = 200;

/// An event as it goes on the wire: `Nats-Msg-Id` (JetStream's dedupe) and the id, type and
/// trace headers consumers read.
pub fn envelope(
    id: &str,
    type_name: &str,
    payload: Bytes,
    traceparent: Option<&str>,
) -> PublishMessage {
    let message = PublishMessage::build()
        .payload(payload)
        .message_id(id)
        .header(HEADER_ID, id)
        .header(HEADER_TYPE, type_name);
    match traceparent {
        Some(tp) => message.header(HEADER_TRACEPARENT, tp),
        None => message,
    }
}
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows committed by another instance wake only that instance's relay, so the holder looks
/// this often; the query on an empty outbox reads one index page.
const IDLE_POLL: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a relay holds the outbox without renewing; a killed holder's rows wait this long.
/// Longer than [`ACK_TIMEOUT`], so a holder waiting for acks does not lose it.
pub const RELAY_LEASE: Duration = Duration::from_secs(15);

/// Why a batch could not be published.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading or deleting outbox rows failed.
    #[error("outbox: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// NATS refused or did not acknowledge.
    #[error("publish: {0}")]
    Publish(String),
}

/// One relay's hold on its context's outbox (the `event_relay_lease` row): only the holder
/// publishes. Taken with a conditional update, so of two relays exactly one gets it.
#[derive(Debug)]
pub struct RelayLease {
    owner: String,
    lease: Duration,
    /// Until when this relay may publish, by its monotonic clock; `None` when not held. The
    /// clock goes on while the process is stopped, so a resumed holder knows it may have lost
    /// the lease before it sends anything.
    held_until: Option<Instant>,
    renewed: Option<Instant>,
}

impl RelayLease {
    /// A relay that holds the outbox for `lease` at a time once it acquires it.
    pub fn new(lease: Duration) -> Self {
        Self {
            owner: crate::new_id(),
            lease,
            held_until: None,
            renewed: None,
        }
    }

    /// Takes the lease, or extends it when a third of it has passed; true while this relay
    /// holds it.
    ///
    /// # Errors
    /// The database error (the lease is then not counted as held).
    pub async fn acquire(&mut self, db: &DatabaseConnection) -> Result<bool, sea_orm::DbErr> {
        if self.holds() && self.renewed.is_some_and(|at| at.elapsed() < self.lease / 3) {
            return Ok(true);
        }
        let (began, now) = (Instant::now(), crate::now_millis());
        let lease = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let backend = db.get_database_backend();
        let taken = db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                placeholders(
                    backend,
                    "UPDATE event_relay_lease SET owner = ?, lease_until = ?
                     WHERE name = 'outbox' AND (owner = ? OR owner IS NULL OR lease_until < ?)",
                ),
                [
                    self.owner.clone().into(),
                    now.saturating_add(lease).into(),
                    self.owner.clone().into(),
                    now.into(),
                ],
            ))
            .await;
        match taken {
            Ok(r) if r.rows_affected() == 1 => {
                self.held_until = Some(began + self.lease);
                self.renewed = Some(began);
                Ok(true)
            }
            Ok(_) => {
                self.held_until = None;
                Ok(false)
            }
            Err(e) => {
                self.held_until = None;
                Err(e)
            }
        }
    }

    /// Whether this relay holds the lease now, by its own clock.
    pub fn holds(&self) -> bool {
        self.held_until.is_some_and(|until| Instant::now() < until)
    }

    /// Gives the lease up so another instance's relay takes over at once.
    pub async fn release(&mut self, db: &DatabaseConnection) {
        self.held_until = None;
        let backend = db.get_database_backend();
        let _ = db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                placeholders(
                    backend,
                    "UPDATE event_relay_lease SET owner = NULL, lease_until = 0
                     WHERE name = 'outbox' AND owner = ?",
                ),
                [self.owner.clone().into()],
            ))
            .await;
    }
}

/// Publishes while holding the outbox's [`RelayLease`] until `shutdown` fires; waits as a
/// standby while another instance's relay holds it.
pub async fn run(
    db: DatabaseConnection,
    js: jetstream::Context,
    signal: OutboxSignal,
    shutdown: Shutdown,
) {
    let mut lease = RelayLease::new(RELAY_LEASE);
    let mut backoff = Duration::from_millis(100);
    loop {
        if shutdown.is_fired() {
            lease.release(&db).await;
            return;
        }
        let wait = match publish_held(&db, &js, &mut lease).await {
            // A standby: the holder publishes this instance's rows too.
            Ok(None) => IDLE_POLL,
            // A full batch: more rows may be waiting.
            Ok(Some(n)) if n as u64 >= BATCH => {
                backoff = Duration::from_millis(100);
                continue;
            }
            // Drained. A commit since the batch was read left a wake-up behind, so the next
            // read happens at once for it; reading again just to find nothing would cost a
            // query per batch.
            Ok(Some(_)) => {
                backoff = Duration::from_millis(100);
                IDLE_POLL
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox relay cannot publish");
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        tokio::select! {
            () = signal.woken() => {}
            () = tokio::time::sleep(wait) => {}
            () = shutdown.clone().wait() => {
                lease.release(&db).await;
                return;
            }
        }
    }
}

/// Publishes up to one batch if this relay holds (or can take) the outbox's lease; `None`
/// when another relay holds it.
///
/// # Errors
/// As [`publish_batch`], and the database error of taking the lease.
pub async fn publish_held(
    db: &DatabaseConnection,
    js: &jetstream::Context,
    lease: &mut RelayLease,
) -> Result<Option<usize>, RelayError> {
    if !lease.acquire(db).await? {
        return Ok(None);
    }
    publish_while(db, js, || lease.holds()).await.map(Some)
}

/// Publishes up to one batch of outbox rows, with no lease (a lone relay); returns how many
/// were acknowledged and removed.
///
/// # Errors
/// [`RelayError`]; rows not acknowledged stay for the next attempt.
pub async fn publish_batch(
    db: &DatabaseConnection,
    js: &jetstream::Context,
) -> Result<usize, RelayError> {
    publish_while(db, js, || true).await
}

/// Publishes up to one batch, sending each row only while `held` says the lease lasts: a relay
/// resumed after a pause stops before sending rows another relay may have published since.
async fn publish_while(
    db: &DatabaseConnection,
    js: &jetstream::Context,
    held: impl Fn() -> bool,
) -> Result<usize, RelayError> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT id, subject, type_name, payload, traceparent FROM event_outbox
                 ORDER BY created_at, id LIMIT {BATCH}"
            ),
        ))
        .await?;
    let mut in_flight: Vec<(String, PublishAckFuture)> = Vec::with_capacity(rows.len());
    let mut failure = None;
    for row in rows {
        if !held() {
            break;
        }
        let id: String = row.try_get("", "id")?;
        let subject: String = row.try_get("", "subject")?;
        let type_name: String = row.try_get("", "type_name")?;
        let payload: String = row.try_get("", "payload")?;
        let traceparent: Option<String> = row.try_get("", "traceparent")?;
        let payload = STANDARD
            .decode(payload)
            .map_err(|e| RelayError::Publish(format!("row {id}: {e}")))?;
        // The publish is a span of the request's trace (the row's `traceparent`), and the
        // message names it, so a consumer's span is its child.
        let span = traceparent
            .as_deref()
            .map(|tp| publish_span(&subject, &id, tp));
        let traceparent = span
            .as_ref()
            .and_then(|s| s.in_scope(crate::telemetry::current_traceparent))
            .or(traceparent);
        let message = envelope(&id, &type_name, payload.into(), traceparent.as_deref());
        let sent = js.send_publish(subject, message);
        let sent = match span {
            Some(span) => sent.instrument(span).await,
            None => sent.await,
        };
        match sent {
            Ok(ack) => in_flight.push((id, ack)),
            Err(e) => {
                failure = Some(RelayError::Publish(e.to_string()));
                break;
            }
        }
    }
    let mut acked: Vec<String> = Vec::with_capacity(in_flight.len());
    for (id, ack) in in_flight {
        match tokio::time::timeout(ACK_TIMEOUT, ack).await {
            Ok(Ok(_)) => acked.push(id),
            Ok(Err(e)) => {
                failure.get_or_insert(RelayError::Publish(e.to_string()));
                record_failure(db, &id, &e.to_string()).await;
            }
            Err(_) => {
                failure.get_or_insert(RelayError::Publish("no ack in time".into()));
            }
        }
    }
    // One statement (one commit, one fsync) for the whole batch; a crash before it only means
    // a re-publish, which the stream's duplicate window drops.
    if !acked.is_empty() {
        let marks = vec!["?"; acked.len()].join(", ");
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            placeholders(
                backend,
                &format!("DELETE FROM event_outbox WHERE id IN ({marks})"),
            ),
            acked.iter().map(|id| id.clone().into()),
        ))
        .await?;
    }
    let published = acked.len();
    crate::metrics::add(
        "polyshop_outbox_published_total",
        "Outbox events JetStream acknowledged.",
        &[],
        published as u64,
    );
    match failure {
        Some(e) if published == 0 => Err(e),
        _ => Ok(published),
    }
}

/// The span of one event's publish, continuing the trace of the request that wrote it.
fn publish_span(subject: &str, id: &str, traceparent: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "publish",
        otel.kind = "producer",
        subject = %subject,
        event_id = %id,
        trace_id = tracing::field::Empty
    );
    crate::telemetry::continue_trace_from(&span, Some(traceparent));
    span
}

async fn record_failure(db: &DatabaseConnection, id: &str, error: &str) {
    let backend = db.get_database_backend();
    let _ = db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            placeholders(
                backend,
                "UPDATE event_outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
            ),
            [error.into(), id.into()],
        ))
        .await;
}
