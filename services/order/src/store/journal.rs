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
use crate::{
    app::ports::Fence,
    domain::{Order, OrderError, OrderEvent, saga::Saga},
};

/// One saga's write.
enum Write {
    /// A new saga with its order's first events, claimed by `owner`, unless its key is taken
    /// (see [`SagaStore::insert`]).
    Create {
        events: Vec<OrderEvent>,
        saga: Saga,
        owner: String,
        lease_until: i64,
    },
    /// The saga's progress, under its fence.
    Save(Saga, Fence),
    /// Events for the order's stream (expected at `current`'s version), with the saga under
    /// its fence.
    Append {
        current: Option<Box<Order>>,
        events: Vec<OrderEvent>,
        saga: Saga,
        fence: Fence,
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
    /// key, claimed by `owner` until `lease_until`, or finds the order an earlier call placed
    /// under it (then nothing is written); returns once committed.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn create(
        &self,
        events: &[OrderEvent],
        saga: &Saga,
        owner: &str,
        lease_until: i64,
    ) -> Result<Created, OrderError> {
        let create = Write::Create {
            events: events.to_vec(),
            saga: saga.clone(),
            owner: owner.to_owned(),
            lease_until,
        };
        match self.writes.submit(create).await? {
            Written::Created(created) => Ok(created),
            _ => Err(mismatched()),
        }
    }

    /// Saves `saga`'s progress under `fence`; returns once it is committed.
    ///
    /// # Errors
    /// `LeaseLost` when the saga was claimed since; `Internal` for storage errors.
    pub async fn save(&self, saga: &Saga, fence: &Fence) -> Result<(), OrderError> {
        self.writes
            .submit(Write::Save(saga.clone(), fence.clone()))
            .await
            .map(|_| ())
    }

    /// Appends `events` to the order's stream, expecting it at `current` (none for a new
    /// order), and saves `saga` with them under `fence`; returns the new state once it is
    /// committed.
    ///
    /// # Errors
    /// `Conflict` when another writer appended first; `LeaseLost` when the saga was claimed
    /// since (the events are not written either); `Internal` for storage errors.
    pub async fn append(
        &self,
        current: Option<&Order>,
        events: &[OrderEvent],
        saga: &Saga,
        fence: &Fence,
    ) -> Result<Order, OrderError> {
        let append = Write::Append {
            current: current.cloned().map(Box::new),
            events: events.to_vec(),
            saga: saga.clone(),
            fence: fence.clone(),
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
                Write::Save(saga, fence) => {
                    SagaStore::save(self.db(), &saga, &fence).await?;
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
        Write::Create {
            events,
            saga,
            owner,
            lease_until,
        } => Ok(Written::Created(
            match SagaStore::insert(txn, saga, owner, *lease_until).await? {
                Claim::New(_) => Created::New(Box::new(store.prepare(None, events, rows)?)),
                Claim::Existing(order_id) => Created::Existing(order_id),
            },
        )),
        Write::Save(saga, fence) => {
            SagaStore::save(txn, saga, fence).await?;
            Ok(Written::Saved)
        }
        Write::Append {
            current,
            events,
            saga,
            fence,
        } => {
            // The fenced saga write first: a refused one costs no event preparation, and the
            // group (or this write alone) rolls back with it.
            SagaStore::save(txn, saga, fence).await?;
            let order = store.prepare(current.as_deref(), events, rows)?;
            Ok(Written::Appended(Box::new(order)))
        }
    }
}
