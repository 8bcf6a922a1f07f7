//! Saga progress, committed through the platform's [`GroupCommit`]: the writes of every saga
//! waiting at the same moment go into one transaction, so one fsync makes many steps durable
//! instead of one each, and the group's events and outbox rows are written with one statement
//! per table. A write is acknowledged only after the transaction holding it committed. If
//! anything in a group fails, the group is rolled back and each write runs alone, so one
//! saga's conflict never fails another saga's step.

use std::sync::Arc;

use futures::future::BoxFuture;
use polyshop_platform::db::group::{self, GroupCommit, Grouped};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};

use super::{Claim, EventStore, Rows, SagaStore};
use crate::domain::{Order, OrderError, OrderEvent, saga::Saga};

/// One saga's write.
enum Write {
    /// A new saga with its order's first events, unless its key is taken (see
    /// [`SagaStore::insert`]).
    Create { events: Vec<OrderEvent>, saga: Saga },
    /// The saga's progress.
    Save(Saga),
    /// Events for the order's stream (expected at `current`'s version), with the saga.
    Append {
        current: Option<Box<Order>>,
        events: Vec<OrderEvent>,
        saga: Saga,
    },
}

/// Hands saga writes to the task that commits them in groups.
#[derive(Debug, Clone)]
pub struct SagaJournal {
    writes: GroupCommit<Writes>,
}

impl SagaJournal {
    /// Starts the committing task on `events`' connection (inside a Tokio runtime).
    pub fn start(events: EventStore) -> Self {
        let db = events.db().clone();
        Self {
            writes: GroupCommit::start(db, Arc::new(Writes(events))),
        }
    }

    /// Stores a new `saga` with its order's first `events` under the request's idempotency
    /// key, or finds the order an earlier call placed under it (then nothing is written);
    /// returns once committed.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn create(&self, events: &[OrderEvent], saga: &Saga) -> Result<Created, OrderError> {
        let create = Write::Create {
            events: events.to_vec(),
            saga: saga.clone(),
        };
        match self.writes.submit(create).await? {
            Written::Created(created) => Ok(created),
            _ => Err(mismatched()),
        }
    }

    /// Saves `saga`'s progress; returns once it is committed.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn save(&self, saga: &Saga) -> Result<(), OrderError> {
        self.writes
            .submit(Write::Save(saga.clone()))
            .await
            .map(|_| ())
    }

    /// Appends `events` to the order's stream, expecting it at `current` (none for a new
    /// order), and saves `saga` with them; returns the new state once it is committed.
    ///
    /// # Errors
    /// `Conflict` when another writer appended first; `Internal` for storage errors.
    pub async fn append(
        &self,
        current: Option<&Order>,
        events: &[OrderEvent],
        saga: &Saga,
    ) -> Result<Order, OrderError> {
        let append = Write::Append {
            current: current.cloned().map(Box::new),
            events: events.to_vec(),
            saga: saga.clone(),
        };
        match self.writes.submit(append).await? {
            Written::Appended(order) => Ok(*order),
            _ => Err(mismatched()),
        }
    }
}

/// What [`SagaJournal::create`] found.
#[derive(Debug)]
pub enum Created {
    /// The saga is stored; this is its order after the events.
    New(Box<Order>),
    /// An earlier call placed this order under the same key.
    Existing(String),
}

/// What a write answers.
enum Written {
    /// The new saga's outcome.
    Created(Created),
    /// The saga's progress is saved.
    Saved,
    /// The order after the appended events.
    Appended(Box<Order>),
}

fn mismatched() -> OrderError {
    OrderError::Internal("the saga journal answered a write with another's result".into())
}

/// Applies saga writes for [`GroupCommit`].
struct Writes(EventStore);

impl Grouped for Writes {
    type Write = Write;
    type Output = Written;
    type Error = OrderError;
    type Deferred = Rows;

    fn apply<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        write: &'a Write,
        rows: &'a mut Rows,
    ) -> BoxFuture<'a, Result<Written, OrderError>> {
        Box::pin(apply(&self.0, txn, write, rows))
    }

    fn flush<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        rows: Rows,
    ) -> BoxFuture<'a, Result<(), OrderError>> {
        Box::pin(self.0.write(txn, rows))
    }

    fn db(&self) -> &DatabaseConnection {
        self.0.db()
    }

    fn db_error(e: DbErr) -> OrderError {
        e.into()
    }

    fn alone(&self, write: Write) -> BoxFuture<'_, Result<Written, OrderError>> {
        Box::pin(async move {
            match write {
                // A statement that commits by itself.
                Write::Save(saga) => {
                    SagaStore::save(self.db(), &saga).await?;
                    Ok(Written::Saved)
                }
                write => group::in_own_transaction(self, write).await,
            }
        })
    }

    fn stopped() -> OrderError {
        OrderError::Internal("the saga journal has stopped".into())
    }
}

/// Applies `write`; its events and their outbox rows go to `rows`, which the group writes with
/// one statement per table before it commits.
async fn apply(
    store: &EventStore,
    txn: &DatabaseTransaction,
    write: &Write,
    rows: &mut Rows,
) -> Result<Written, OrderError> {
    match write {
        Write::Create { events, saga } => Ok(Written::Created(
            match SagaStore::insert(txn, saga).await? {
                Claim::New(_) => Created::New(Box::new(store.prepare(None, events, rows)?)),
                Claim::Existing(order_id) => Created::Existing(order_id),
            },
        )),
        Write::Save(saga) => {
            SagaStore::save(txn, saga).await?;
            Ok(Written::Saved)
        }
        Write::Append {
            current,
            events,
            saga,
        } => {
            let order = store.prepare(current.as_deref(), events, rows)?;
            SagaStore::save(txn, saga).await?;
            Ok(Written::Appended(Box::new(order)))
        }
    }
}
