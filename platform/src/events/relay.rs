//! The outbox relay: publishes outbox rows in order and deletes each only after JetStream
//! acknowledged it. While NATS is away it retries with capped exponential backoff; the rows
//! simply wait. A re-publish after a lost ack carries the same `Nats-Msg-Id`, which the
//! stream's duplicate window drops.

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use super::{HEADER_ID, HEADER_TRACEPARENT, HEADER_TYPE, outbox::OutboxSignal};
use crate::{db::placeholders, shutdown::Shutdown};

const BATCH: u64 = 200;
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_POLL: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

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

/// Publishes until `shutdown` fires.
pub async fn run(
    db: DatabaseConnection,
    js: jetstream::Context,
    signal: OutboxSignal,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if shutdown.is_fired() {
            return;
        }
        let wait = match publish_batch(&db, &js).await {
            // A full batch: more rows may be waiting.
            Ok(n) if n as u64 >= BATCH => {
                backoff = Duration::from_millis(100);
                continue;
            }
            // Drained. A commit since the batch was read left a wake-up behind, so the next
            // read happens at once for it; reading again just to find nothing would cost a
            // query per batch.
            Ok(_) => {
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
            () = shutdown.clone().wait() => return,
        }
    }
}

/// Publishes up to one batch of outbox rows; returns how many were acknowledged and removed.
///
/// # Errors
/// [`RelayError`]; rows not acknowledged stay for the next attempt.
pub async fn publish_batch(
    db: &DatabaseConnection,
    js: &jetstream::Context,
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
        let id: String = row.try_get("", "id")?;
        let subject: String = row.try_get("", "subject")?;
        let type_name: String = row.try_get("", "type_name")?;
        let payload: String = row.try_get("", "payload")?;
        let traceparent: Option<String> = row.try_get("", "traceparent")?;
        let payload = STANDARD
            .decode(payload)
            .map_err(|e| RelayError::Publish(format!("row {id}: {e}")))?;
        let mut message = PublishMessage::build()
            .payload(Bytes::from(payload))
            .message_id(&id)
            .header(HEADER_ID, id.as_str())
            .header(HEADER_TYPE, type_name.as_str());
        if let Some(tp) = traceparent {
            message = message.header(HEADER_TRACEPARENT, tp.as_str());
        }
        match js.send_publish(subject, message).await {
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
