//! The transactional outbox: rows written with the state change, published by the relay.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::STANDARD};
use sea_orm::{ConnectionTrait, DbErr, Statement};
use tokio::sync::Notify;

use super::OutgoingEvent;
use crate::db::{Migration, placeholders};

/// Outbox and inbox tables; services append these to their own migrations.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1001,
        name: "event outbox and inbox",
        sql: "CREATE TABLE event_outbox (
            id TEXT PRIMARY KEY,
            subject TEXT NOT NULL,
            type_name TEXT NOT NULL,
            payload TEXT NOT NULL,
            traceparent TEXT,
            created_at BIGINT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT);
          CREATE INDEX event_outbox_by_time ON event_outbox (created_at, id);
          CREATE TABLE event_inbox (
            consumer TEXT NOT NULL,
            event_id TEXT NOT NULL,
            processed_at BIGINT NOT NULL,
            PRIMARY KEY (consumer, event_id))",
    },
    Migration {
        version: 1002,
        name: "outbox relay lease",
        sql: "CREATE TABLE event_relay_lease (
            name TEXT PRIMARY KEY,
            owner TEXT,
            lease_until BIGINT NOT NULL);
          INSERT INTO event_relay_lease (name, owner, lease_until) VALUES ('outbox', NULL, 0)",
    },
    Migration {
        version: 1003,
        name: "inbox by age, for the retention pruner",
        sql: "CREATE INDEX event_inbox_by_age ON event_inbox (processed_at)",
    },
];

/// Writes `event` into the outbox on `conn` — pass the transaction of the state change.
///
/// # Errors
/// The database error; the caller's transaction then rolls back with the change.
pub async fn enqueue<C: ConnectionTrait>(conn: &C, event: &OutgoingEvent) -> Result<(), DbErr> {
    enqueue_all(conn, std::slice::from_ref(event)).await
}

/// Writes `events` into the outbox on `conn` with one statement (nothing for none).
///
/// # Errors
/// As [`enqueue`].
pub async fn enqueue_all<C: ConnectionTrait>(
    conn: &C,
    events: &[OutgoingEvent],
) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let backend = conn.get_database_backend();
    let now = crate::now_millis();
    let rows = vec!["(?, ?, ?, ?, ?, ?)"; events.len()].join(", ");
    let values = events.iter().flat_map(|event| {
        [
            event.id.clone().into(),
            event.subject.clone().into(),
            event.type_name.clone().into(),
            STANDARD.encode(&event.payload).into(),
            event.traceparent.clone().into(),
            now.into(),
        ]
    });
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        placeholders(
            backend,
            &format!(
                "INSERT INTO event_outbox (id, subject, type_name, payload, traceparent, created_at)
                 VALUES {rows}"
            ),
        ),
        values,
    ))
    .await?;
    Ok(())
}

/// Rows not yet published.
///
/// # Errors
/// The database error.
pub async fn pending<C: ConnectionTrait>(conn: &C) -> Result<u64, DbErr> {
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT COUNT(*) AS n FROM event_outbox",
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n").unwrap_or(0))
        .unwrap_or(0)
        .try_into()
        .unwrap_or(0))
}

/// Wakes the relay after a commit that wrote outbox rows.
#[derive(Debug, Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    /// A new signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Call after committing a transaction that enqueued events.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Resolves at the next wake (or immediately if one is pending).
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}
