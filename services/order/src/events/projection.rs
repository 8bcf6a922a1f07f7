//! The CQRS projection: order events → `order_view`, plus the rebuild from history.

use futures::future::BoxFuture;
use polyshop_platform::events::{
    ReceivedEvent,
    consumer::{Handler, HandlerError},
};
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};

use crate::{
    codec,
    domain::{Order, OrderError},
    store::{EventStore, Projected, ReadModel},
};

/// Applies order events to the read model.
#[derive(Debug, Default)]
pub struct ProjectionHandler;

impl Handler for ProjectionHandler {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a ReceivedEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let poison = |e: codec::CodecError| HandlerError::Poison(e.to_string());
            let codec::Decoded {
                event: decoded,
                order_id,
                at,
            } = codec::decode(&event.type_name, &event.payload).map_err(poison)?;
            match ReadModel::project(txn, &order_id, &decoded, at).await {
                Ok(Projected::Applied) => Ok(()),
                Ok(Projected::MissingOrder) => Err(HandlerError::Retry(format!(
                    "order {order_id} not projected yet"
                ))),
                Err(e) => Err(HandlerError::Retry(e.to_string())),
            }
        })
    }
}

/// Rebuilds `order_view` from the event store in one transaction; returns how many orders.
///
/// # Errors
/// Storage or decoding errors; the old view stays on failure.
pub async fn rebuild(db: &DatabaseConnection) -> Result<usize, OrderError> {
    let store = EventStore::new(db.clone(), i64::MAX);
    let mut orders: Vec<Order> = Vec::new();
    for id in store.order_ids().await? {
        let events = store
            .history(&id)
            .await?
            .iter()
            .map(|r| codec::decode(&r.kind, &r.payload).map(|d| (d.event, r.recorded_at)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| OrderError::Internal(Box::new(e)))?;
        if let Some(order) = Order::replay(None, &events) {
            orders.push(order);
        }
    }
    let txn = db.begin().await?;
    ReadModel::replace_all(&txn, &orders).await?;
    txn.commit().await?;
    Ok(orders.len())
}
