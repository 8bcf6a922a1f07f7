//! The saga log over the database: the group-committing journal for writes, the event store
//! and the saga table for reads, and the outbox relay woken after every append.

use futures::future::BoxFuture;
use polyshop_platform::events::outbox::OutboxSignal;

use super::{Created, EventStore, SagaJournal, SagaStore, UserReplica};
use crate::{
    app::ports::{AccountReplica, SagaLog},
    domain::{Order, OrderError, OrderEvent, saga::Saga},
};

/// [`SagaLog`] over the order database.
#[derive(Debug, Clone)]
pub struct StoredSagas {
    journal: SagaJournal,
    events: EventStore,
    sagas: SagaStore,
    outbox: OutboxSignal,
}

impl StoredSagas {
    /// The log over `events`' database (starts the journal's committing task).
    pub fn new(events: EventStore, outbox: OutboxSignal) -> Self {
        Self {
            journal: SagaJournal::start(events.clone()),
            sagas: SagaStore::new(events.db().clone()),
            events,
            outbox,
        }
    }
}

impl SagaLog for StoredSagas {
    fn create<'a>(
        &'a self,
        events: &'a [OrderEvent],
        saga: &'a Saga,
    ) -> BoxFuture<'a, Result<Created, OrderError>> {
        Box::pin(async move {
            let created = self.journal.create(events, saga).await?;
            self.outbox.wake();
            Ok(created)
        })
    }

    fn placed_under<'a>(
        &'a self,
        user_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, OrderError>> {
        Box::pin(self.sagas.placed_under(user_id, key))
    }

    fn save<'a>(&'a self, saga: &'a Saga) -> BoxFuture<'a, Result<(), OrderError>> {
        Box::pin(self.journal.save(saga))
    }

    fn append<'a>(
        &'a self,
        current: &'a Order,
        events: &'a [OrderEvent],
        saga: Option<&'a Saga>,
    ) -> BoxFuture<'a, Result<Order, OrderError>> {
        Box::pin(async move {
            let order = match saga {
                Some(saga) => self.journal.append(Some(current), events, saga).await?,
                None => self.events.append(Some(current), events).await?,
            };
            self.outbox.wake();
            Ok(order)
        })
    }

    fn saga<'a>(&'a self, order_id: &'a str) -> BoxFuture<'a, Result<Option<Saga>, OrderError>> {
        Box::pin(self.sagas.get(order_id))
    }

    fn order<'a>(&'a self, order_id: &'a str) -> BoxFuture<'a, Result<Option<Order>, OrderError>> {
        Box::pin(self.events.load(order_id))
    }

    fn due(&self, now: i64, limit: u64) -> BoxFuture<'_, Result<Vec<String>, OrderError>> {
        Box::pin(self.sagas.due(now, limit))
    }
}

impl AccountReplica for UserReplica {
    fn status<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Option<String>, OrderError>> {
        Box::pin(async move { Ok(UserReplica::status(self, user_id).await?) })
    }
}
