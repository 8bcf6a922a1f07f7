//! The integration events of the catalog context, as the outbox stores them:
//! `polyshop.catalog.product.created`, `.product.updated` and `.product.price_changed` on the
//! `POLYSHOP_CATALOG` stream. The store writes them in the transaction of the change.

use polyshop::catalog::v1 as pb;
use polyshop_platform::{
    events::{OutgoingEvent, event},
    timestamp,
};

use crate::{domain::ProductEvent, grpc::convert};

/// The outbox form of a domain event: a creation occurred at the product's `created_at`, a
/// change at its (new) `updated_at`.
pub fn outgoing(e: &ProductEvent) -> OutgoingEvent {
    match e {
        ProductEvent::Created(p) => event(&pb::ProductCreated {
            occur_time: Some(timestamp(p.created_at)),
            product: Some(convert::product(p.clone())),
        }),
        ProductEvent::Updated(p) => event(&pb::ProductUpdated {
            occur_time: Some(timestamp(p.updated_at)),
            product: Some(convert::product(p.clone())),
        }),
        ProductEvent::PriceChanged {
            product,
            previous_price,
        } => event(&pb::ProductPriceChanged {
            product_id: product.id.clone(),
            previous_price: Some(convert::money(previous_price.clone())),
            price: Some(convert::money(product.price.clone())),
            occur_time: Some(timestamp(product.updated_at)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::domain::{Money, Product};

    fn pan() -> Product {
        Product {
            id: "p1".into(),
            name: "Pan".into(),
            description: String::new(),
            category: "kitchen".into(),
            price: Money {
                amount_minor: 250,
                currency_code: "EUR".into(),
            },
            other_prices: Vec::new(),
            active: true,
            created_at: 1_000,
            updated_at: 3_000,
        }
    }

    #[test]
    fn each_event_goes_to_the_subject_its_proto_declares() {
        let cases = [
            (
                ProductEvent::Created(pan()),
                "polyshop.catalog.product.created",
            ),
            (
                ProductEvent::Updated(pan()),
                "polyshop.catalog.product.updated",
            ),
            (
                ProductEvent::PriceChanged {
                    product: pan(),
                    previous_price: pan().price,
                },
                "polyshop.catalog.product.price_changed",
            ),
        ];
        for (e, subject) in cases {
            assert_eq!(outgoing(&e).subject, subject);
        }
    }

    #[test]
    fn a_created_event_carries_the_product_and_its_creation_time() {
        let e = outgoing(&ProductEvent::Created(pan()));
        assert_eq!(e.type_name, "polyshop.catalog.v1.ProductCreated");
        let decoded = pb::ProductCreated::decode(e.payload.as_slice()).expect("decode");
        assert_eq!(decoded.product.expect("product").product_id, "p1");
        assert_eq!(decoded.occur_time.expect("time").seconds, 1);
    }

    #[test]
    fn a_price_change_carries_both_prices_and_the_update_time() {
        let e = outgoing(&ProductEvent::PriceChanged {
            product: pan(),
            previous_price: Money {
                amount_minor: 100,
                currency_code: "EUR".into(),
            },
        });
        let decoded = pb::ProductPriceChanged::decode(e.payload.as_slice()).expect("decode");
        assert_eq!(decoded.product_id, "p1");
        assert_eq!(decoded.previous_price.expect("previous").amount_minor, 100);
        assert_eq!(decoded.price.expect("price").amount_minor, 250);
        assert_eq!(decoded.occur_time.expect("time").seconds, 3);
    }
}
