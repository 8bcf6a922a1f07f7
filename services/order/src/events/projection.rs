//! The CQRS projection: order events → `order_view`, plus the rebuild from history.

use futures::future::BoxFuture;
use polyshop::order::v1 as pb;
use polyshop_platform::events::{
    ReceivedEvent,
    consumer::{Handler, HandlerError},
};
use prost::Message;
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};

use crate::{
    codec,
    domain::{Order, OrderError},
    store::{EventStore, Projected, ReadModel},
};

fn millis(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000))
}

/// The order id and event time carried by an order event.
fn key(type_name: &str, payload: &[u8]) -> Result<(String, i64), codec::CodecError> {
    Ok(match type_name {
        "polyshop.order.v1.OrderCreated" => {
            let e = pb::OrderCreated::decode(payload)?;
            (
                e.order.map(|o| o.order_id).unwrap_or_default(),
                millis(e.occur_time.as_ref()),
            )
        }
        "polyshop.order.v1.OrderConfirmed" => {
            let e = pb::OrderConfirmed::decode(payload)?;
            (e.order_id, millis(e.occur_time.as_ref()))
        }
        "polyshop.order.v1.OrderRejected" => {
            let e = pb::OrderRejected::decode(payload)?;
            (e.order_id, millis(e.occur_time.as_ref()))
        }
        "polyshop.order.v1.OrderCancelled" => {
            let e = pb::OrderCancelled::decode(payload)?;
            (e.order_id, millis(e.occur_time.as_ref()))
        }
        "polyshop.order.v1.OrderShipped" => {
            let e = pb::OrderShipped::decode(payload)?;
            (e.order_id, millis(e.occur_time.as_ref()))
        }
        "polyshop.order.v1.OrderDelivered" => {
            let e = pb::OrderDelivered::decode(payload)?;
            (e.order_id, millis(e.occur_time.as_ref()))
        }
        other => return codec::decode(other, payload).map(|_| (String::new(), 0)),
    })
}

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
            let (order_id, at) = key(&event.type_name, &event.payload).map_err(poison)?;
            let decoded = codec::decode(&event.type_name, &event.payload).map_err(poison)?;
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
            .map(|r| codec::decode(&r.kind, &r.payload).map(|e| (e, r.recorded_at)))
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
