//! The saga log over the database: the group-committing journal for writes, the event store
//! and the saga table for reads, and the outbox relay woken after every append.

use futures::future::BoxFuture;
use polyshop_platform::events::outbox::OutboxSignal;

use super::{Created, EventStore, SagaJournal, SagaStore, UserReplica};
use crate::{
    app::ports::{AccountReplica, Fence, SagaLog},
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
        owner: &'a str,
        lease_until: i64,
    ) -> BoxFuture<'a, Result<Created, OrderError>> {
        Box::pin(async move {
            let created = self
                .journal
                .create(events, saga, owner, lease_until)
                .await?;
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

    fn claim<'a>(
        &'a self,
        order_id: &'a str,
        owner: &'a str,
        now: i64,
        lease_until: i64,
    ) -> BoxFuture<'a, Result<Option<Fence>, OrderError>> {
        Box::pin(self.sagas.claim(order_id, owner, now, lease_until))
    }

    fn renew<'a>(
        &'a self,
        fence: &'a Fence,
        lease_until: i64,
    ) -> BoxFuture<'a, Result<(), OrderError>> {
        Box::pin(self.sagas.renew(fence, lease_until))
    }

    fn release<'a>(&'a self, fence: &'a Fence) -> BoxFuture<'a, Result<(), OrderError>> {
        Box::pin(self.sagas.release(fence))
    }

    fn save<'a>(
        &'a self,
        saga: &'a Saga,
        fence: &'a Fence,
    ) -> BoxFuture<'a, Result<(), OrderError>> {
        Box::pin(self.journal.save(saga, fence))
    }

    fn append<'a>(
        &'a self,
        current: &'a Order,
        events: &'a [OrderEvent],
        saga: Option<(&'a Saga, &'a Fence)>,
    ) -> BoxFuture<'a, Result<Order, OrderError>> {
        Box::pin(async move {
            let order = match saga {
                Some((saga, fence)) => {
                    self.journal
                        .append(Some(current), events, saga, fence)
                        .await?
                }
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
