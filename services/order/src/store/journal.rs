//! Saga progress, committed through the platform's [`GroupCommit`]: the writes of every saga
//! waiting at the same moment go into one transaction, so one fsync makes many steps durable
//! instead of one each. A write is acknowledged only after the transaction holding it
//! committed. If anything in a group fails, the group is rolled back and each write runs
//! alone, so one saga's conflict never fails another saga's step.

use std::sync::Arc;

use futures::future::BoxFuture;
use polyshop_platform::db::group::{GroupCommit, Grouped};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};

use super::{Claim, EventStore, Saga, SagaStore};
use crate::domain::{Order, OrderError, OrderEvent, PlaceOrder};

/// One saga's write.
enum Write {
    /// A new order's idempotency key, claimed for `order_id` (see [`SagaStore::claim`]).
    Claim {
        order_id: String,
        user_id: String,
        request: Box<PlaceOrder>,
    },
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

    /// Claims `request`'s key for `order_id`, or finds the order an earlier call claimed it
    /// for; returns once the claim is committed.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn claim(
        &self,
        order_id: &str,
        user_id: &str,
        request: &PlaceOrder,
    ) -> Result<Claim, OrderError> {
        let claim = Write::Claim {
            order_id: order_id.to_owned(),
            user_id: user_id.to_owned(),
            request: Box::new(request.clone()),
        };
        match self.writes.submit(claim).await? {
            Written::Claimed(claim) => Ok(claim),
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

/// What a write answers.
enum Written {
    /// The claim's outcome.
    Claimed(Claim),
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

    fn apply<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        write: &'a Write,
    ) -> BoxFuture<'a, Result<Written, OrderError>> {
        Box::pin(apply(&self.0, txn, write))
    }

    fn db(&self) -> &DatabaseConnection {
        self.0.db()
    }

    fn db_error(e: DbErr) -> OrderError {
        e.into()
    }

    fn alone(&self, write: Write) -> BoxFuture<'_, Result<Written, OrderError>> {
        Box::pin(async move { alone(&self.0, &write).await })
    }

    fn stopped() -> OrderError {
        OrderError::Internal("the saga journal has stopped".into())
    }
}

async fn apply(
    store: &EventStore,
    txn: &DatabaseTransaction,
    write: &Write,
) -> Result<Written, OrderError> {
    match write {
        Write::Claim {
            order_id,
            user_id,
            request,
        } => Ok(Written::Claimed(
            SagaStore::claim(txn, order_id, user_id, request).await?,
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
            let order = store.append_in(txn, current.as_deref(), events).await?;
            SagaStore::save(txn, saga).await?;
            Ok(Written::Appended(Box::new(order)))
        }
    }
}

async fn alone(store: &EventStore, write: &Write) -> Result<Written, OrderError> {
    match write {
        // Statements that commit by themselves.
        Write::Claim {
            order_id,
            user_id,
            request,
        } => {
            let claim = SagaStore::claim(store.db(), order_id, user_id, request).await?;
            return Ok(Written::Claimed(claim));
        }
        Write::Save(saga) => {
            SagaStore::save(store.db(), saga).await?;
            return Ok(Written::Saved);
        }
        Write::Append { .. } => {}
    }
    let txn = store.db().begin().await?;
    let result = apply(store, &txn, write).await;
    super::finish(txn, result).await
}
