//! Group commit of saga progress: the writes of every saga waiting at the same moment go into
//! one transaction, so one fsync makes many steps durable instead of one each. A write is
//! acknowledged only after the transaction holding it committed. If anything in a group fails,
//! the group is rolled back and each write runs alone, so one saga's conflict never fails
//! another saga's step.

use sea_orm::{DatabaseTransaction, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use super::{EventStore, Saga, SagaStore};
use crate::domain::{Order, OrderError, OrderEvent};

/// One saga's write.
enum Write {
    /// The saga's progress.
    Save(Saga),
    /// Events for the order's stream (expected at `current`'s version), with the saga.
    Append {
        current: Option<Box<Order>>,
        events: Vec<OrderEvent>,
        saga: Saga,
    },
}

struct Job {
    write: Write,
    /// The caller's span: events written for it carry the trace of the request behind it.
    span: tracing::Span,
    reply: oneshot::Sender<Result<Option<Order>, OrderError>>,
}

/// The most writes one transaction takes.
const GROUP: usize = 64;

/// Hands saga writes to the task that commits them in groups.
#[derive(Debug, Clone)]
pub struct SagaJournal {
    jobs: mpsc::UnboundedSender<Job>,
}

impl SagaJournal {
    /// Starts the committing task on `events`' connection (inside a Tokio runtime).
    pub fn start(events: EventStore) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(commit_groups(events, queue));
        Self { jobs }
    }

    /// Saves `saga`'s progress; returns once it is committed.
    ///
    /// # Errors
    /// `Internal` for storage errors.
    pub async fn save(&self, saga: &Saga) -> Result<(), OrderError> {
        self.submit(Write::Save(saga.clone())).await.map(|_| ())
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
        self.submit(Write::Append {
            current: current.cloned().map(Box::new),
            events: events.to_vec(),
            saga: saga.clone(),
        })
        .await?
        .ok_or(OrderError::NotFound)
    }

    async fn submit(&self, write: Write) -> Result<Option<Order>, OrderError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                write,
                span: tracing::Span::current(),
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> OrderError {
    OrderError::Internal("the saga journal has stopped".into())
}

/// Takes whatever writes are waiting (at least one) and commits them together.
async fn commit_groups(events: EventStore, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP
            && let Ok(job) = queue.try_recv()
        {
            group.push(job);
        }
        if group.len() > 1
            && let Some(results) = together(&events, &group).await
        {
            for (job, result) in group.into_iter().zip(results) {
                let _ = job.reply.send(Ok(result));
            }
            continue;
        }
        for job in group {
            let result = alone(&events, &job.write)
                .instrument(job.span.clone())
                .await;
            let _ = job.reply.send(result);
        }
    }
}

async fn apply(
    store: &EventStore,
    txn: &DatabaseTransaction,
    write: &Write,
) -> Result<Option<Order>, OrderError> {
    match write {
        Write::Save(saga) => {
            SagaStore::save(txn, saga).await?;
            Ok(None)
        }
        Write::Append {
            current,
            events,
            saga,
        } => {
            let order = store.append_in(txn, current.as_deref(), events).await?;
            SagaStore::save(txn, saga).await?;
            Ok(Some(order))
        }
    }
}

/// Every write of `group` in one transaction, or `None` (nothing kept) if any fails.
async fn together(store: &EventStore, group: &[Job]) -> Option<Vec<Option<Order>>> {
    let txn = store.db().begin().await.ok()?;
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        match apply(store, &txn, &job.write)
            .instrument(job.span.clone())
            .await
        {
            Ok(result) => results.push(result),
            Err(_) => {
                // Roll back now rather than on drop: SQLite has one pooled connection.
                let _ = txn.rollback().await;
                return None;
            }
        }
    }
    txn.commit().await.ok()?;
    Some(results)
}

async fn alone(store: &EventStore, write: &Write) -> Result<Option<Order>, OrderError> {
    if let Write::Save(saga) = write {
        // One statement commits by itself.
        SagaStore::save(store.db(), saga).await?;
        return Ok(None);
    }
    let txn = store.db().begin().await?;
    let result = apply(store, &txn, write).await;
    super::finish(txn, result).await
}
