//! Proto → domain for requests (responses use `crate::codec`).

use polyshop::order::v1 as pb;
use polyshop_platform::status::Violations;

use crate::{
    codec,
    domain::{OrderError, OrderStatus, PlaceOrder, RequestedLine},
};

pub fn place_order(r: pb::CreateOrderRequest) -> PlaceOrder {
    PlaceOrder {
        idempotency_key: r.idempotency_key.trim().to_owned(),
        lines: r
            .items
            .into_iter()
            .map(|i| RequestedLine {
                product_id: i.product_id.trim().to_owned(),
                quantity: i.quantity,
            })
            .collect(),
        shipping: r
            .shipping_address
            .as_ref()
            .map(codec::address_in)
            .unwrap_or_default(),
        payment_method_token: r.payment_method_token.trim().to_owned(),
    }
}

pub fn order_id(id: &str) -> Result<&str, OrderError> {
    // The contract's min_len lets a whitespace-only id through.
    if id.trim().is_empty() {
        let mut v = Violations::new();
        v.add("order_id", "is required");
        return Err(OrderError::Invalid(v));
    }
    Ok(id.trim())
}

/// A status filter or target; unspecified is `None`.
pub fn status_in(value: i32) -> Option<OrderStatus> {
    match pb::OrderStatus::try_from(value) {
        Ok(pb::OrderStatus::Pending) => Some(OrderStatus::Pending),
        Ok(pb::OrderStatus::Confirmed) => Some(OrderStatus::Confirmed),
        Ok(pb::OrderStatus::Rejected) => Some(OrderStatus::Rejected),
        Ok(pb::OrderStatus::Cancelled) => Some(OrderStatus::Cancelled),
        Ok(pb::OrderStatus::Shipped) => Some(OrderStatus::Shipped),
        Ok(pb::OrderStatus::Delivered) => Some(OrderStatus::Delivered),
        _ => None,
    }
}
