//! Domain ↔ protobuf for orders and their events. Events are stored and published as their
//! proto messages, so history, outbox and projection all speak the contract's types.

use polyshop::{api::v1::Money as PbMoney, order::v1 as pb};
use polyshop_platform::{events::OutgoingEvent, timestamp};
use prost::Message;

use crate::domain::{Money, Order, OrderEvent, OrderLine, OrderStatus, Rejection, ShippingAddress};

fn money(m: &Money) -> PbMoney {
    PbMoney {
        amount_minor: m.amount_minor,
        currency_code: m.currency.clone(),
    }
}

fn money_in(m: Option<&PbMoney>) -> Money {
    m.map(|m| Money {
        amount_minor: m.amount_minor,
        currency: m.currency_code.clone(),
    })
    .unwrap_or_default()
}

/// Proto status of a domain status.
pub fn status(s: OrderStatus) -> pb::OrderStatus {
    match s {
        OrderStatus::Pending => pb::OrderStatus::Pending,
        OrderStatus::Confirmed => pb::OrderStatus::Confirmed,
        OrderStatus::Rejected => pb::OrderStatus::Rejected,
        OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
        OrderStatus::Shipped => pb::OrderStatus::Shipped,
        OrderStatus::Delivered => pb::OrderStatus::Delivered,
    }
}

fn status_in(s: i32) -> OrderStatus {
    match pb::OrderStatus::try_from(s) {
        Ok(pb::OrderStatus::Confirmed) => OrderStatus::Confirmed,
        Ok(pb::OrderStatus::Rejected) => OrderStatus::Rejected,
        Ok(pb::OrderStatus::Cancelled) => OrderStatus::Cancelled,
        Ok(pb::OrderStatus::Shipped) => OrderStatus::Shipped,
        Ok(pb::OrderStatus::Delivered) => OrderStatus::Delivered,
        _ => OrderStatus::Pending,
    }
}

fn rejection(r: Rejection) -> pb::RejectionReason {
    match r {
        Rejection::UserNotFound => pb::RejectionReason::UserNotFound,
        Rejection::UserInactive => pb::RejectionReason::UserInactive,
        Rejection::ProductNotFound => pb::RejectionReason::ProductNotFound,
        Rejection::CurrencyMismatch => pb::RejectionReason::CurrencyMismatch,
        Rejection::InsufficientStock => pb::RejectionReason::InsufficientStock,
        Rejection::PaymentDeclined => pb::RejectionReason::PaymentDeclined,
        Rejection::ServiceUnavailable => pb::RejectionReason::ServiceUnavailable,
    }
}

fn rejection_in(r: i32) -> Rejection {
    match pb::RejectionReason::try_from(r) {
        Ok(pb::RejectionReason::UserNotFound) => Rejection::UserNotFound,
        Ok(pb::RejectionReason::UserInactive) => Rejection::UserInactive,
        Ok(pb::RejectionReason::ProductNotFound) => Rejection::ProductNotFound,
        Ok(pb::RejectionReason::CurrencyMismatch) => Rejection::CurrencyMismatch,
        Ok(pb::RejectionReason::InsufficientStock) => Rejection::InsufficientStock,
        Ok(pb::RejectionReason::PaymentDeclined) => Rejection::PaymentDeclined,
        _ => Rejection::ServiceUnavailable,
    }
}

/// A domain address as proto.
pub fn address(a: &ShippingAddress) -> pb::ShippingAddress {
    pb::ShippingAddress {
        recipient: a.recipient.clone(),
        line1: a.line1.clone(),
        line2: a.line2.clone(),
        city: a.city.clone(),
        region: a.region.clone(),
        postal_code: a.postal_code.clone(),
        country_code: a.country_code.clone(),
    }
}

/// A proto address as domain.
pub fn address_in(a: &pb::ShippingAddress) -> ShippingAddress {
    ShippingAddress {
        recipient: a.recipient.trim().to_owned(),
        line1: a.line1.trim().to_owned(),
        line2: a.line2.trim().to_owned(),
        city: a.city.trim().to_owned(),
        region: a.region.trim().to_owned(),
        postal_code: a.postal_code.trim().to_owned(),
        country_code: a.country_code.trim().to_owned(),
    }
}

/// A domain order as proto.
pub fn order(o: &Order) -> pb::Order {
    pb::Order {
        order_id: o.id.clone(),
        user_id: o.user_id.clone(),
        items: o
            .lines
            .iter()
            .map(|l| pb::OrderItem {
                product_id: l.product_id.clone(),
                product_name: l.product_name.clone(),
                quantity: l.quantity,
                unit_price: Some(money(&l.unit_price)),
                line_total: Some(money(&l.total())),
            })
            .collect(),
        total: Some(money(&o.total)),
        status: status(o.status) as i32,
        rejection_reason: o.rejection.map_or(0, |r| rejection(r) as i32),
        status_detail: o.status_detail.clone(),
        shipping_address: Some(address(&o.shipping)),
        payment_id: o.payment_id.clone(),
        tracking_number: o.tracking_number.clone(),
        version: o.version,
        create_time: Some(timestamp(o.created_at)),
        update_time: Some(timestamp(o.updated_at)),
    }
}

fn millis(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000))
}

/// A proto order as domain.
pub fn order_in(o: &pb::Order) -> Order {
    Order {
        id: o.order_id.clone(),
        user_id: o.user_id.clone(),
        lines: o
            .items
            .iter()
            .map(|i| OrderLine {
                product_id: i.product_id.clone(),
                product_name: i.product_name.clone(),
                quantity: i.quantity,
                unit_price: money_in(i.unit_price.as_ref()),
            })
            .collect(),
        total: money_in(o.total.as_ref()),
        status: status_in(o.status),
        rejection: (o.rejection_reason != 0).then(|| rejection_in(o.rejection_reason)),
        status_detail: o.status_detail.clone(),
        shipping: o
            .shipping_address
            .as_ref()
            .map(address_in)
            .unwrap_or_default(),
        payment_id: o.payment_id.clone(),
        tracking_number: o.tracking_number.clone(),
        version: o.version,
        created_at: millis(o.create_time.as_ref()),
        updated_at: millis(o.update_time.as_ref()),
    }
}

/// The proto message of an event of `order` (its state before the event), as an outgoing
/// event with `event_id`, and as a history entry body.
pub fn outgoing(
    order_id: &str,
    user_id: &str,
    event: &OrderEvent,
    event_id: &str,
    at: i64,
) -> OutgoingEvent {
    let occur_time = Some(timestamp(at));
    let (order_id, user_id) = (order_id.to_owned(), user_id.to_owned());
    let mut out = match event {
        OrderEvent::Created(o) => polyshop_platform::events::event(&pb::OrderCreated {
            order: Some(order(o)),
            occur_time,
        }),
        OrderEvent::Confirmed { payment_id } => {
            polyshop_platform::events::event(&pb::OrderConfirmed {
                order_id,
                user_id,
                payment_id: payment_id.clone(),
                occur_time,
            })
        }
        OrderEvent::Rejected { reason, detail } => {
            polyshop_platform::events::event(&pb::OrderRejected {
                order_id,
                user_id,
                reason: rejection(*reason) as i32,
                detail: detail.clone(),
                occur_time,
            })
        }
        OrderEvent::Cancelled { reason } => polyshop_platform::events::event(&pb::OrderCancelled {
            order_id,
            user_id,
            reason: reason.clone(),
            occur_time,
        }),
        OrderEvent::Shipped { tracking_number } => {
            polyshop_platform::events::event(&pb::OrderShipped {
                order_id,
                user_id,
                tracking_number: tracking_number.clone(),
                occur_time,
            })
        }
        OrderEvent::Delivered => polyshop_platform::events::event(&pb::OrderDelivered {
            order_id,
            user_id,
            occur_time,
        }),
    };
    event_id.clone_into(&mut out.id);
    out
}

/// Why an event could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode order event: {0}")]
pub struct CodecError(String);

impl From<prost::DecodeError> for CodecError {
    fn from(e: prost::DecodeError) -> Self {
        Self(e.to_string())
    }
}

/// Decodes a stored or published event by its kind (`created`, …) or proto type name.
///
/// # Errors
/// [`CodecError`] for a payload that is not that event, or an unknown kind.
pub fn decode(kind: &str, payload: &[u8]) -> Result<OrderEvent, CodecError> {
    Ok(match kind {
        "created" | "polyshop.order.v1.OrderCreated" => {
            let e = pb::OrderCreated::decode(payload)?;
            OrderEvent::Created(Box::new(order_in(&e.order.unwrap_or_default())))
        }
        "confirmed" | "polyshop.order.v1.OrderConfirmed" => OrderEvent::Confirmed {
            payment_id: pb::OrderConfirmed::decode(payload)?.payment_id,
        },
        "rejected" | "polyshop.order.v1.OrderRejected" => {
            let e = pb::OrderRejected::decode(payload)?;
            OrderEvent::Rejected {
                reason: rejection_in(e.reason),
                detail: e.detail,
            }
        }
        "cancelled" | "polyshop.order.v1.OrderCancelled" => OrderEvent::Cancelled {
            reason: pb::OrderCancelled::decode(payload)?.reason,
        },
        "shipped" | "polyshop.order.v1.OrderShipped" => OrderEvent::Shipped {
            tracking_number: pb::OrderShipped::decode(payload)?.tracking_number,
        },
        "delivered" | "polyshop.order.v1.OrderDelivered" => OrderEvent::Delivered,
        other => return Err(CodecError(format!("unknown order event {other}"))),
    })
}

/// A history entry for GetOrderHistory.
pub fn history_entry(
    version: i64,
    event_id: &str,
    kind: &str,
    payload: &[u8],
    at: i64,
) -> pb::OrderHistoryEntry {
    use pb::order_history_entry::Event;
    let event = match kind {
        "created" => pb::OrderCreated::decode(payload).ok().map(Event::Created),
        "confirmed" => pb::OrderConfirmed::decode(payload)
            .ok()
            .map(Event::Confirmed),
        "rejected" => pb::OrderRejected::decode(payload).ok().map(Event::Rejected),
        "cancelled" => pb::OrderCancelled::decode(payload)
            .ok()
            .map(Event::Cancelled),
        "shipped" => pb::OrderShipped::decode(payload).ok().map(Event::Shipped),
        "delivered" => pb::OrderDelivered::decode(payload)
            .ok()
            .map(Event::Delivered),
        _ => None,
    };
    pb::OrderHistoryEntry {
        version,
        event_id: event_id.to_owned(),
        record_time: Some(timestamp(at)),
        event,
    }
}
