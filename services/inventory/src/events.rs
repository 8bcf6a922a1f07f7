//! The inventory context's event side.
//!
//! Published: `polyshop.inventory.stock.adjusted`, `.stock.reserved`, `.stock.confirmed` and
//! `.stock.released` on the `POLYSHOP_INVENTORY` stream, written by the store in the
//! transaction of the change ([`outgoing`] gives them their wire form).
//!
//! Consumed: `polyshop.catalog.product.created`, through the durable consumer
//! `inventory-product-created`, gives every new product a stock row at 0
//! ([`ProductCreatedHandler`]).

use futures::future::BoxFuture;
use polyshop::{catalog::v1 as catalog, inventory::v1 as pb};
use polyshop_platform::{
    config::EventSettings,
    events::{
        EventBus, OutgoingEvent, ReceivedEvent,
        consumer::{ConsumerSpec, Handler, HandlerError},
        event,
    },
    now_millis,
    shutdown::Shutdown,
    timestamp,
};
use sea_orm::{DatabaseConnection, DatabaseTransaction};

use crate::{
    domain::{InventoryEvent, check_id},
    grpc::convert,
    store,
};

/// The durable consumer of `product.created`.
pub const PRODUCT_CREATED_CONSUMER: &str = "inventory-product-created";
/// The catalog's stream.
pub const CATALOG_STREAM: &str = "POLYSHOP_CATALOG";
/// `product.created`: a stock row at 0.
pub const PRODUCT_CREATED: &str = "polyshop.catalog.product.created";

/// The outbox form of a domain event. It occurred at the stock's or reservation's update
/// time, which the store set to the time of the change.
pub fn outgoing(e: &InventoryEvent) -> OutgoingEvent {
    match e {
        InventoryEvent::StockAdjusted {
            stock,
            previous_on_hand,
        } => event(&pb::StockAdjusted {
            occur_time: stock.updated_at.map(timestamp),
            previous_quantity_on_hand: *previous_on_hand,
            stock: Some(convert::stock(stock.clone())),
        }),
        InventoryEvent::StockReserved(r) => event(&pb::StockReserved {
            occur_time: Some(timestamp(r.updated_at)),
            reservation: Some(convert::reservation(r.clone())),
        }),
        InventoryEvent::StockConfirmed(r) => event(&pb::StockConfirmed {
            occur_time: Some(timestamp(r.updated_at)),
            reservation: Some(convert::reservation(r.clone())),
        }),
        InventoryEvent::StockReleased(r) => event(&pb::StockReleased {
            occur_time: Some(timestamp(r.updated_at)),
            reservation: Some(convert::reservation(r.clone())),
        }),
    }
}

/// The consumers this service runs.
pub fn consumer_specs(settings: &EventSettings) -> [ConsumerSpec; 1] {
    [settings.consumer(PRODUCT_CREATED_CONSUMER, CATALOG_STREAM, &[PRODUCT_CREATED])]
}

/// Runs the consumers in the background until `shutdown`.
pub fn spawn_consumers(
    bus: &EventBus,
    db: &DatabaseConnection,
    settings: &EventSettings,
    shutdown: &Shutdown,
) {
    let [product_created] = consumer_specs(settings);
    bus.spawn_consumer(
        db.clone(),
        product_created,
        std::sync::Arc::new(ProductCreatedHandler),
        shutdown.clone(),
    );
}

/// Gives a new catalog product a stock row at 0 (nothing on hand, nothing reserved), in the
/// consumer's transaction; a product that already has a row keeps it as it is. An event that
/// cannot be decoded or names no valid product id is poison; storage trouble is retried.
#[derive(Debug, Default)]
pub struct ProductCreatedHandler;

impl Handler for ProductCreatedHandler {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a ReceivedEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            if event.subject != PRODUCT_CREATED {
                return Err(HandlerError::Poison(format!(
                    "{:?} is not consumed here",
                    event.subject
                )));
            }
            let created: catalog::ProductCreated = event
                .decode()
                .map_err(|e| HandlerError::Poison(format!("not a ProductCreated: {e}")))?;
            let product_id = created.product.map(|p| p.product_id).unwrap_or_default();
            check_id(&product_id)
                .map_err(|why| HandlerError::Poison(format!("product.product_id {why}")))?;
            let stocked = store::ensure_stock(txn, &product_id, now_millis())
                .await
                .map_err(|e| HandlerError::Retry(e.to_string()))?;
            if stocked {
                tracing::info!(product_id = %product_id, "stock row created for a new product");
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use polyshop_platform::events::subject_of;
    use prost::Message;

    use super::*;
    use crate::domain::{Reservation, ReservationItem, ReservationStatus, StockLevel};

    fn reservation(status: ReservationStatus) -> Reservation {
        Reservation {
            id: "order-1".into(),
            items: vec![ReservationItem {
                product_id: "p-1".into(),
                quantity: 2,
            }],
            status,
            expires_at: 10_000,
            created_at: 1_000,
            updated_at: 4_000,
            release_reason: String::new(),
        }
    }

    #[test]
    fn the_consumed_subject_is_the_one_the_catalog_declares() {
        assert_eq!(
            subject_of::<catalog::ProductCreated>().as_deref(),
            Some(PRODUCT_CREATED)
        );
        let [spec] = consumer_specs(&EventSettings::default());
        assert_eq!(
            (spec.name.as_str(), spec.stream.as_str()),
            (PRODUCT_CREATED_CONSUMER, CATALOG_STREAM)
        );
        assert_eq!(spec.filter_subjects, [PRODUCT_CREATED]);
    }

    #[test]
    fn each_event_goes_to_the_subject_its_proto_declares() {
        let stock = StockLevel {
            product_id: "p-1".into(),
            on_hand: 5,
            reserved: 0,
            updated_at: Some(2_000),
        };
        let cases = [
            (
                InventoryEvent::StockAdjusted {
                    stock,
                    previous_on_hand: 0,
                },
                "polyshop.inventory.stock.adjusted",
            ),
            (
                InventoryEvent::StockReserved(reservation(ReservationStatus::Held)),
                "polyshop.inventory.stock.reserved",
            ),
            (
                InventoryEvent::StockConfirmed(reservation(ReservationStatus::Confirmed)),
                "polyshop.inventory.stock.confirmed",
            ),
            (
                InventoryEvent::StockReleased(reservation(ReservationStatus::Released)),
                "polyshop.inventory.stock.released",
            ),
        ];
        for (e, subject) in cases {
            assert_eq!(outgoing(&e).subject, subject);
        }
    }

    #[test]
    fn an_adjustment_carries_the_stock_and_the_count_before() {
        let e = outgoing(&InventoryEvent::StockAdjusted {
            stock: StockLevel {
                product_id: "p-1".into(),
                on_hand: 5,
                reserved: 2,
                updated_at: Some(2_000),
            },
            previous_on_hand: 7,
        });
        let decoded = pb::StockAdjusted::decode(e.payload.as_slice()).expect("decode");
        assert_eq!(decoded.previous_quantity_on_hand, 7);
        let stock = decoded.stock.expect("stock");
        assert_eq!((stock.quantity_on_hand, stock.quantity_available), (5, 3));
        assert_eq!(decoded.occur_time.expect("time").seconds, 2);
    }

    #[test]
    fn a_release_carries_the_reservation_and_occurred_when_it_was_settled() {
        let mut released = reservation(ReservationStatus::Released);
        released.release_reason = "hold expired".into();
        let e = outgoing(&InventoryEvent::StockReleased(released));
        let decoded = pb::StockReleased::decode(e.payload.as_slice()).expect("decode");
        let r = decoded.reservation.expect("reservation");
        assert_eq!(r.release_reason, "hold expired");
        assert_eq!(r.status, pb::ReservationStatus::Released as i32);
        assert_eq!(decoded.occur_time.expect("time").seconds, 4);
    }
}
