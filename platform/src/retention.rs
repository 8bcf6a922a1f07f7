//! Retention of rows kept only for a while: a service's [`Pruner`] deletes, every
//! `events.prune_interval_secs`, the rows of each registered [`Rule`] whose timestamp is past
//! the rule's window. Event ids in the inbox are needed only while the event can still be
//! delivered; idempotency keys only while a caller may still replay the request.
//!
//! Rows go in batches of [`BATCH`] per statement, each its own transaction, so a large backlog
//! never holds a table (or SQLite's one connection) for long. The statement,
//! `DELETE … WHERE (key) IN (SELECT key … ORDER BY ts LIMIT n)`, runs as is on SQLite and
//! PostgreSQL, and on a key of several columns.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

use crate::{config::EventSettings, db::placeholders, shutdown::Shutdown};

/// Rows deleted per statement.
pub const BATCH: u64 = 1000;

/// A table whose rows are deleted once they are older than a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The table.
    pub table: &'static str,
    /// The column(s) of its primary key, comma-separated: `consumer, event_id`.
    pub key: &'static str,
    /// The epoch-millisecond column a row's age counts from; it should be indexed.
    pub timestamp: &'static str,
    /// Age past which a row is deleted.
    pub window: Duration,
}

impl Rule {
    /// The consumers' inbox (`event_inbox`), for as long as an event can come back: its
    /// stream's age plus the DLQ's, since a redriven event is delivered again with its id.
    pub fn inbox(events: &EventSettings) -> Self {
        Self {
            table: "event_inbox",
            key: "consumer, event_id",
            timestamp: "processed_at",
            window: events.inbox_window(),
        }
    }

    /// A table of idempotency keys, kept for `events.idempotency_window_days`.
    pub fn idempotency_keys(
        table: &'static str,
        key: &'static str,
        timestamp: &'static str,
        events: &EventSettings,
    ) -> Self {
        Self {
            table,
            key,
            timestamp,
            window: events.idempotency_window(),
        }
    }

    /// Deletes at most `limit` rows older than `cutoff` (epoch ms), oldest first.
    async fn delete_batch(
        &self,
        db: &DatabaseConnection,
        cutoff: i64,
        limit: u64,
    ) -> Result<u64, DbErr> {
        let Self {
            table,
            key,
            timestamp,
            ..
        } = self;
        let backend = db.get_database_backend();
        let sql = format!(
            "DELETE FROM {table} WHERE ({key}) IN
               (SELECT {key} FROM {table} WHERE {timestamp} < ? ORDER BY {timestamp} LIMIT ?)"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let done = db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                placeholders(backend, &sql),
                [cutoff.into(), limit.into()],
            ))
            .await?;
        Ok(done.rows_affected())
    }
}

/// What one pass deleted from one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// The table.
    pub table: &'static str,
    /// Rows deleted.
    pub rows: u64,
    /// Statements that deleted them.
    pub batches: u64,
}

/// Deletes the rows of its rules past their windows.
#[derive(Debug, Clone)]
pub struct Pruner {
    db: DatabaseConnection,
    rules: Vec<Rule>,
    batch: u64,
}

impl Pruner {
    /// A pruner of `db` with no rules yet, deleting [`BATCH`] rows a statement.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            rules: Vec::new(),
            batch: BATCH,
        }
    }

    /// Adds `rule`.
    #[must_use]
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Deletes at most `rows` a statement (at least one).
    #[must_use]
    pub fn batch(mut self, rows: u64) -> Self {
        self.batch = rows.max(1);
        self
    }

    /// One pass over every rule, relative to now.
    ///
    /// # Errors
    /// The first database error; rows deleted before it stay deleted.
    pub async fn prune_once(&self) -> Result<Vec<Pruned>, DbErr> {
        let now = crate::now_millis();
        let mut report = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let window = i64::try_from(rule.window.as_millis()).unwrap_or(i64::MAX);
            let cutoff = now.saturating_sub(window);
            let mut pruned = Pruned {
                table: rule.table,
                rows: 0,
                batches: 0,
            };
            loop {
                let rows = rule.delete_batch(&self.db, cutoff, self.batch).await?;
                pruned.rows += rows;
                pruned.batches += 1;
                if rows < self.batch {
                    break;
                }
                // Lets waiting writers in between batches, SQLite's single connection above all.
                tokio::task::yield_now().await;
            }
            if pruned.rows > 0 {
                crate::metrics::add(
                    "polyshop_retention_pruned_rows_total",
                    "Rows deleted past their retention window, by table.",
                    &[("table", rule.table)],
                    pruned.rows,
                );
                tracing::info!(
                    table = rule.table,
                    rows = pruned.rows,
                    "pruned rows past their retention window"
                );
            }
            report.push(pruned);
        }
        Ok(report)
    }

    /// Runs a pass now and then every `every` until `shutdown`, in the background. Instances
    /// sharing a database may prune at once: a row deleted by one is simply not deleted again.
    pub fn spawn(self, every: Duration, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while !shutdown.is_fired() {
                if let Err(e) = self.prune_once().await {
                    tracing::warn!(error = %e, "pruning failed; trying again next interval");
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = shutdown.clone().wait() => return,
                }
            }
        })
    }
}
