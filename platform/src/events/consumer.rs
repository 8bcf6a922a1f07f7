//! Durable pull consumers with explicit ack and exactly-once effects: the handler runs inside
//! a database transaction that also records the event id in `event_inbox`; a redelivered
//! event whose id is already there is acknowledged without running the handler again. A
//! handler that keeps failing sends the message to the dead-letter stream after MaxDeliver,
//! and the consumer moves on. Messages that arrive together share one transaction; a failure
//! among them sends each through on its own.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, AckKind, consumer::pull, message::PublishMessage};
use futures::{StreamExt, future::BoxFuture};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement, TransactionTrait,
};

use super::{HEADER_ID, HEADER_TRACEPARENT, HEADER_TYPE, ReceivedEvent, streams::DLQ_PREFIX};
use crate::{db::placeholders, shutdown::Shutdown};
use tracing::Instrument as _;

/// Header: the subject a dead letter was first published on.
pub const DLQ_SUBJECT: &str = "Polyshop-Dlq-Subject";
/// Header: why it was dead-lettered.
pub const DLQ_REASON: &str = "Polyshop-Dlq-Reason";
/// Header: the consumer that gave up.
pub const DLQ_CONSUMER: &str = "Polyshop-Dlq-Consumer";

/// What a handler reports.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Try again later (redelivered until MaxDeliver).
    #[error("{0}")]
    Retry(String),
    /// Cannot ever succeed (undecodable, unknown type): dead-letter now.
    #[error("{0}")]
    Poison(String),
}

/// Applies one event inside the given transaction.
pub trait Handler: Send + Sync + 'static {
    /// Applies `event`; effects go through `txn` so they commit with the inbox row.
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a ReceivedEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// A durable consumer's configuration.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Durable name, e.g. `notification-order-events`.
    pub name: String,
    /// Stream, e.g. `POLYSHOP_ORDER`.
    pub stream: String,
    /// Subjects within the stream, e.g. `polyshop.order.confirmed`.
    pub filter_subjects: Vec<String>,
    /// How long a delivery may stay unacknowledged before redelivery.
    pub ack_wait: Duration,
    /// Deliveries before the message is dead-lettered.
    pub max_deliver: i64,
}

/// Consumes until `shutdown` fires, reconnecting the consumer after errors.
pub async fn run(
    js: jetstream::Context,
    db: DatabaseConnection,
    spec: ConsumerSpec,
    handler: Arc<dyn Handler>,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_fired() {
        match consume(&js, &db, &spec, handler.as_ref(), &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(consumer = %spec.name, error = %e, "consumer interrupted; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.clone().wait() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn consume(
    js: &jetstream::Context,
    db: &DatabaseConnection,
    spec: &ConsumerSpec,
    handler: &dyn Handler,
    shutdown: &Shutdown,
) -> Result<(), async_nats::Error> {
    let stream = js.get_stream(&spec.stream).await?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(
            &spec.name,
            pull::Config {
                durable_name: Some(spec.name.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: spec.ack_wait,
                max_deliver: spec.max_deliver,
                filter_subjects: spec.filter_subjects.clone(),
                ..Default::default()
            },
        )
        .await?;
    // One long-lived pull that the client renews as messages are consumed, not a pull request
    // per batch: under load a batch is a message or two, and each request, its end-of-batch
    // status and the next request cost the broker and this process a round trip.
    let messages = consumer
        .stream()
        .max_messages_per_batch(BATCH)
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await?;
    // Whatever has arrived is applied together: one transaction (one fsync) for many events
    // under load, one for each when they trickle in.
    let mut chunks = messages.ready_chunks(BATCH);
    loop {
        let chunk = tokio::select! {
            chunk = chunks.next() => chunk,
            () = shutdown.clone().wait() => return Ok(()),
        };
        let Some(chunk) = chunk else {
            return Err("the pull subscription ended".into());
        };
        let mut messages = Vec::with_capacity(chunk.len());
        let mut broken = None;
        for message in chunk {
            match message {
                Ok(m) => messages.push(m),
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        process_all(js, db, spec, handler, &messages).await?;
        if let Some(e) = broken {
            return Err(e.into());
        }
    }
}

/// How long one pull request stays open at the broker before the client renews it.
const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// The broker's heartbeat on an idle pull; two missed ones mean the pull is gone.
const PULL_HEARTBEAT: Duration = Duration::from_secs(5);

/// Messages fetched at once.
const BATCH: usize = 64;

/// Applies `messages` in one transaction and acks them; if any of them fails (or lacks an
/// id), none of that transaction is kept and each message goes through [`process`] alone, so
/// retries, poison and dead letters are decided per message exactly as for a single one.
async fn process_all(
    js: &jetstream::Context,
    db: &DatabaseConnection,
    spec: &ConsumerSpec,
    handler: &dyn Handler,
    messages: &[jetstream::Message],
) -> Result<(), async_nats::Error> {
    if messages.len() > 1 {
        match apply_together(db, spec, handler, messages).await {
            Ok(()) => {
                for message in messages {
                    count_outcome(spec, "ok");
                    if let Some(event) = received(message) {
                        observe_lag(spec, &event.id);
                    }
                    message.ack().await?;
                }
                return Ok(());
            }
            Err(reason) => {
                tracing::debug!(consumer = %spec.name, %reason, "batch not applied; applying one by one");
            }
        }
    }
    for message in messages {
        process(js, db, spec, handler, message).await?;
    }
    Ok(())
}

/// The event in `message`, if it carries an id.
fn received(message: &jetstream::Message) -> Option<ReceivedEvent> {
    let id = header(message, HEADER_ID).or_else(|| header(message, "Nats-Msg-Id"))?;
    Some(ReceivedEvent {
        id,
        subject: message.subject.to_string(),
        type_name: header(message, HEADER_TYPE).unwrap_or_default(),
        payload: message.payload.clone(),
        delivered: message.info().map(|i| i.delivered).unwrap_or(1),
    })
}

/// The span an event is handled in, continuing the trace of the request that caused it.
fn event_span(
    spec: &ConsumerSpec,
    event: &ReceivedEvent,
    message: &jetstream::Message,
) -> tracing::Span {
    let span = tracing::info_span!(
        "event",
        consumer = %spec.name,
        subject = %event.subject,
        event_id = %event.id,
        trace_id = tracing::field::Empty
    );
    crate::telemetry::continue_trace_from(&span, header(message, HEADER_TRACEPARENT).as_deref());
    span
}

fn count_outcome(spec: &ConsumerSpec, outcome: &str) {
    crate::metrics::inc(
        "polyshop_events_handled_total",
        "Event deliveries a consumer handled, by outcome (ok, poison, retry).",
        &[("consumer", &spec.name), ("outcome", outcome)],
    );
}

/// Records how long after its creation an event's effects committed here: the event ids are
/// UUIDv7s minted when the event was written to its outbox, so this is outbox → relay →
/// broker → this consumer's commit, what a user waits for between an action and its
/// consequence in another context (e.g. an order confirmed → its notification stored).
/// Ids without a timestamp (not v7) are not counted; clocks are the same machine's or
/// NTP-synchronised, so the figure is meaningful down to a millisecond or so.
fn observe_lag(spec: &ConsumerSpec, event_id: &str) {
    if let Some(lag) = lag_seconds(event_id, crate::now_millis()) {
        crate::metrics::observe(
            "polyshop_event_lag_seconds",
            "Time from an event's creation (its UUIDv7 id) to its effects committing, by consumer.",
            &[("consumer", &spec.name)],
            lag,
        );
    }
}

/// Seconds from the creation of the event with `event_id` (a UUIDv7) to `now_ms`; `None` for
/// an id without a timestamp. A clock that stepped back counts as no lag.
fn lag_seconds(event_id: &str, now_ms: i64) -> Option<f64> {
    let (seconds, nanos) = uuid::Uuid::parse_str(event_id)
        .ok()?
        .get_timestamp()?
        .to_unix();
    let created_ms = i64::try_from(seconds).ok()?.checked_mul(1000)? + i64::from(nanos / 1_000_000);
    #[allow(clippy::cast_precision_loss)]
    Some((now_ms - created_ms).max(0) as f64 / 1000.0)
}

/// Every message's effects and inbox row in one transaction; the first failure aborts it.
async fn apply_together(
    db: &DatabaseConnection,
    spec: &ConsumerSpec,
    handler: &dyn Handler,
    messages: &[jetstream::Message],
) -> Result<(), String> {
    let events = messages
        .iter()
        .map(|m| received(m).map(|e| (e, m)))
        .collect::<Option<Vec<_>>>()
        .ok_or("a message has no event id")?;
    let txn = db.begin().await.map_err(|e| e.to_string())?;
    for (event, message) in &events {
        let applied = apply_in(&txn, &spec.name, handler, event)
            .instrument(event_span(spec, event, message))
            .await;
        if let Err(e) = applied {
            // Roll back now rather than on drop: SQLite has one pooled connection.
            let _ = txn.rollback().await;
            return Err(format!("event {}: {e}", event.id));
        }
    }
    txn.commit().await.map_err(|e| e.to_string())
}

fn header(message: &jetstream::Message, name: &str) -> Option<String> {
    message
        .headers
        .as_ref()?
        .get(name)
        .map(|v| v.as_str().to_owned())
}

async fn process(
    js: &jetstream::Context,
    db: &DatabaseConnection,
    spec: &ConsumerSpec,
    handler: &dyn Handler,
    message: &jetstream::Message,
) -> Result<(), async_nats::Error> {
    let Some(event) = received(message) else {
        dead_letter(js, spec, message, "no event id header").await?;
        return message.ack().await;
    };
    let delivered = event.delivered;
    let outcome = apply(db, &spec.name, handler, &event)
        .instrument(event_span(spec, &event, message))
        .await;
    count_outcome(
        spec,
        match &outcome {
            Ok(()) => "ok",
            Err(HandlerError::Poison(_)) => "poison",
            Err(HandlerError::Retry(_)) => "retry",
        },
    );
    match outcome {
        Ok(()) => {
            observe_lag(spec, &event.id);
            message.ack().await
        }
        Err(HandlerError::Poison(reason)) => {
            tracing::error!(consumer = %spec.name, event_id = %event.id, %reason, "poison event; dead-lettered");
            dead_letter(js, spec, message, &reason).await?;
            message.ack().await
        }
        Err(HandlerError::Retry(reason)) if delivered >= spec.max_deliver => {
            tracing::error!(consumer = %spec.name, event_id = %event.id, %reason, delivered, "gave up; dead-lettered");
            dead_letter(js, spec, message, &reason).await?;
            message.ack().await
        }
        Err(HandlerError::Retry(reason)) => {
            tracing::warn!(consumer = %spec.name, event_id = %event.id, %reason, delivered, "handler failed; will retry");
            let delay = Duration::from_millis(
                100 * 2u64.saturating_pow(u32::try_from(delivered).unwrap_or(10).min(8)),
            );
            message.ack_with(AckKind::Nak(Some(delay))).await
        }
    }
}

/// Runs the handler and records the event in the inbox, in one transaction.
///
/// # Errors
/// The handler's error, or `Retry` for database trouble.
pub async fn apply(
    db: &DatabaseConnection,
    consumer: &str,
    handler: &dyn Handler,
    event: &ReceivedEvent,
) -> Result<(), HandlerError> {
    let txn = db.begin().await.map_err(retry)?;
    if let Err(e) = apply_in(&txn, consumer, handler, event).await {
        // Roll back now rather than on drop: SQLite has one pooled connection.
        let _ = txn.rollback().await;
        return Err(e);
    }
    txn.commit().await.map_err(retry)
}

fn retry(e: sea_orm::DbErr) -> HandlerError {
    HandlerError::Retry(format!("database: {e}"))
}

/// The inbox row and the handler's effects, inside `txn`; nothing if the inbox has the event.
/// The row is claimed first, in one statement: a conflict means an earlier delivery
/// committed, and a failing handler rolls the claim back with its effects.
async fn apply_in(
    txn: &DatabaseTransaction,
    consumer: &str,
    handler: &dyn Handler,
    event: &ReceivedEvent,
) -> Result<(), HandlerError> {
    let backend = txn.get_database_backend();
    let claimed = txn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            placeholders(
                backend,
                "INSERT INTO event_inbox (consumer, event_id, processed_at) VALUES (?, ?, ?)
                 ON CONFLICT (consumer, event_id) DO NOTHING",
            ),
            [
                consumer.into(),
                event.id.clone().into(),
                crate::now_millis().into(),
            ],
        ))
        .await
        .map_err(retry)?
        .rows_affected();
    if claimed == 0 {
        return Ok(());
    }
    handler.handle(txn, event).await
}

async fn dead_letter(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
    message: &jetstream::Message,
    reason: &str,
) -> Result<(), async_nats::Error> {
    crate::metrics::inc(
        "polyshop_events_dead_lettered_total",
        "Events a consumer moved to the dead-letter stream.",
        &[("consumer", &spec.name)],
    );
    let mut headers = message.headers.clone().unwrap_or_default();
    let id = header(message, HEADER_ID).unwrap_or_else(crate::new_id);
    // Unique per source message, so a redriven event that fails again is dead-lettered again
    // rather than dropped as a duplicate; the same delivery dead-lettered twice still dedupes.
    let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
    headers.insert(
        "Nats-Msg-Id",
        format!("{id}:dlq:{}:{sequence}", spec.name).as_str(),
    );
    headers.insert(DLQ_SUBJECT, message.subject.as_str());
    headers.insert(
        DLQ_REASON,
        reason.chars().take(500).collect::<String>().as_str(),
    );
    headers.insert(DLQ_CONSUMER, spec.name.as_str());
    js.send_publish(
        format!("{DLQ_PREFIX}.{}", spec.name),
        PublishMessage::build()
            .payload(message.payload.clone())
            .headers(headers),
    )
    .await?
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::lag_seconds;

    #[test]
    fn lag_runs_from_the_time_inside_a_v7_event_id() {
        let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            1_700_000_000,
            250_000_000,
        ))
        .to_string();
        assert_eq!(lag_seconds(&id, 1_700_000_000_250 + 42), Some(0.042));
        // A clock behind the event's is no lag rather than a negative one.
        assert_eq!(lag_seconds(&id, 1_700_000_000_000), Some(0.0));
    }

    #[test]
    fn ids_without_a_time_are_not_measured() {
        assert_eq!(
            lag_seconds(
                &uuid::Builder::from_random_bytes([7; 16])
                    .into_uuid()
                    .to_string(),
                1
            ),
            None
        );
        assert_eq!(lag_seconds("not-a-uuid", 1), None);
    }
}
