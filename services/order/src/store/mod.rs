//! Persistence of the order context: the event store (append-only, versioned, snapshots),
//! saga state (written through a group-committing journal), the read model the projection maintains, and the user replica. Plain SQL
//! through sea-orm, portable between SQLite and PostgreSQL.

mod event_store;
mod journal;
mod payloads;
mod read_model;
mod replica;
mod saga_log;
mod sagas;

pub use event_store::{EventStore, Recorded, Rows};
pub use journal::{Created, SagaJournal};
pub use read_model::{ListFilter, Projected, ReadModel};
pub use replica::UserReplica;
pub use saga_log::StoredSagas;
pub use sagas::{Claim, SagaStore, Stuck};

use polyshop_platform::{
    db::{self, DbError, Migration, placeholders},
    events::outbox,
};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult, Statement, Value};

use crate::domain::OrderError;

/// Schema of the order database, oldest first (version 3 is the Rust step in `payloads.rs`,
/// run after these).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "event store, snapshots, sagas, read model, user replica",
        sql: "CREATE TABLE order_events (
            order_id TEXT NOT NULL,
            version BIGINT NOT NULL,
            event_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            recorded_at BIGINT NOT NULL,
            PRIMARY KEY (order_id, version));
          CREATE TABLE order_snapshots (
            order_id TEXT PRIMARY KEY,
            version BIGINT NOT NULL,
            payload TEXT NOT NULL,
            taken_at BIGINT NOT NULL);
          CREATE TABLE sagas (
            order_id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            request TEXT NOT NULL,
            step TEXT NOT NULL,
            reservation_id TEXT,
            payment_id TEXT,
            payment_uncertain BOOLEAN NOT NULL DEFAULT FALSE,
            reason TEXT,
            detail TEXT NOT NULL DEFAULT '',
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            UNIQUE (user_id, idempotency_key));
          CREATE INDEX sagas_unfinished ON sagas (step);
          CREATE TABLE order_view (
            order_id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            status TEXT NOT NULL,
            version BIGINT NOT NULL,
            payload TEXT NOT NULL,
            updated_at BIGINT NOT NULL);
          CREATE INDEX order_view_by_user ON order_view (user_id, order_id);
          CREATE TABLE user_replica (
            user_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            updated_at BIGINT NOT NULL)",
    },
    Migration {
        version: 2,
        name: "saga retries: attempts, backoff, horizon, reconciliation flag",
        sql: "ALTER TABLE sagas ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
          ALTER TABLE sagas ADD COLUMN failing_since BIGINT;
          ALTER TABLE sagas ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
          ALTER TABLE sagas ADD COLUMN stuck TEXT;
          CREATE INDEX sagas_due ON sagas (next_attempt_at)",
    },
    Migration {
        version: 4,
        name: "saga claims: owner, lease, fencing epoch",
        sql: "ALTER TABLE sagas ADD COLUMN owner TEXT;
          ALTER TABLE sagas ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
          ALTER TABLE sagas ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0",
    },
];

/// Migrates the order database: the SQL migrations (with the platform's outbox), then the
/// payloads to bytes (`payloads.rs`, migration 3).
///
/// # Errors
/// [`DbError::Migrate`] naming the step that failed.
pub async fn migrate(conn: &sea_orm::DatabaseConnection) -> Result<(), DbError> {
    db::migrate(conn, &[MIGRATIONS, outbox::MIGRATIONS].concat()).await?;
    payloads::to_bytes(conn)
        .await
        .map_err(|source| DbError::Migrate {
            version: 3,
            name: "order payloads as bytes",
            source,
        })
}

/// Ends `txn` as `result` says: committed when the work succeeded, rolled back at once when it
/// failed (not on drop: SQLite has one pooled connection).
pub(crate) async fn finish<T>(
    txn: DatabaseTransaction,
    result: Result<T, OrderError>,
) -> Result<T, OrderError> {
    match result {
        Ok(value) => {
            txn.commit().await?;
            Ok(value)
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

/// A statement with `?` placeholders for the connection's backend.
pub(crate) fn stmt<C: ConnectionTrait>(conn: &C, sql: &str, values: Vec<Value>) -> Statement {
    let backend = conn.get_database_backend();
    Statement::from_sql_and_values(backend, placeholders(backend, sql), values)
}

pub(crate) async fn exec<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<u64, DbErr> {
    Ok(conn
        .execute_raw(stmt(conn, sql, values))
        .await?
        .rows_affected())
}

pub(crate) async fn one<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<Option<QueryResult>, DbErr> {
    conn.query_one_raw(stmt(conn, sql, values)).await
}

pub(crate) async fn all<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<QueryResult>, DbErr> {
    conn.query_all_raw(stmt(conn, sql, values)).await
}
