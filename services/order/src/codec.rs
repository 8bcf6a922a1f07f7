//! Domain ↔ protobuf for orders and their events. Events are stored and published as their
//! proto messages, so history, outbox and projection all speak the contract's types.

use polyshop::{
    api::v1::Money as PbMoney,
    order::v1::{self as pb, order_history_entry::Event},
};
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
        OrderStatus::Cancelling => pb::OrderStatus::Cancelling,
    }
}

fn status_in(s: i32) -> OrderStatus {
    match pb::OrderStatus::try_from(s) {
        Ok(pb::OrderStatus::Confirmed) => OrderStatus::Confirmed,
        Ok(pb::OrderStatus::Rejected) => OrderStatus::Rejected,
        Ok(pb::OrderStatus::Cancelled) => OrderStatus::Cancelled,
        Ok(pb::OrderStatus::Shipped) => OrderStatus::Shipped,
        Ok(pb::OrderStatus::Delivered) => OrderStatus::Delivered,
        Ok(pb::OrderStatus::Cancelling) => OrderStatus::Cancelling,
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
        OrderEvent::CancellationRequested { reason } => {
            polyshop_platform::events::event(&pb::OrderCancellationRequested {
                order_id,
                user_id,
                reason: reason.clone(),
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

/// An event as decoded: the domain event, its order and when it happened.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The event.
    pub event: OrderEvent,
    /// Its order.
    pub order_id: String,
    /// When it happened (epoch ms).
    pub at: i64,
}

/// The one table of order events: a stored (`created`, ...) or published (proto type name)
/// event as its proto message.
///
/// # Errors
/// [`CodecError`] for a payload that is not that event, or an unknown kind.
pub fn decode_proto(kind: &str, payload: &[u8]) -> Result<Event, CodecError> {
    let kind = kind.strip_prefix("polyshop.order.v1.Order").unwrap_or(kind);
    Ok(match kind {
        "created" | "Created" => Event::Created(pb::OrderCreated::decode(payload)?),
        "confirmed" | "Confirmed" => Event::Confirmed(pb::OrderConfirmed::decode(payload)?),
        "rejected" | "Rejected" => Event::Rejected(pb::OrderRejected::decode(payload)?),
        "cancellation_requested" | "CancellationRequested" => {
            Event::CancellationRequested(pb::OrderCancellationRequested::decode(payload)?)
        }
        "cancelled" | "Cancelled" => Event::Cancelled(pb::OrderCancelled::decode(payload)?),
        "shipped" | "Shipped" => Event::Shipped(pb::OrderShipped::decode(payload)?),
        "delivered" | "Delivered" => Event::Delivered(pb::OrderDelivered::decode(payload)?),
        other => return Err(CodecError(format!("unknown order event {other}"))),
    })
}

/// Decodes a stored or published event by its kind (`created`, …) or proto type name.
///
/// # Errors
/// As [`decode_proto`].
pub fn decode(kind: &str, payload: &[u8]) -> Result<Decoded, CodecError> {
    let (event, order_id, at) = match decode_proto(kind, payload)? {
        Event::Created(e) => {
            let order = order_in(&e.order.unwrap_or_default());
            let id = order.id.clone();
            (OrderEvent::Created(Box::new(order)), id, e.occur_time)
        }
        Event::Confirmed(e) => (
            OrderEvent::Confirmed {
                payment_id: e.payment_id,
            },
            e.order_id,
            e.occur_time,
        ),
        Event::Rejected(e) => (
            OrderEvent::Rejected {
                reason: rejection_in(e.reason),
                detail: e.detail,
            },
            e.order_id,
            e.occur_time,
        ),
        Event::CancellationRequested(e) => (
            OrderEvent::CancellationRequested { reason: e.reason },
            e.order_id,
            e.occur_time,
        ),
        Event::Cancelled(e) => (
            OrderEvent::Cancelled { reason: e.reason },
            e.order_id,
            e.occur_time,
        ),
        Event::Shipped(e) => (
            OrderEvent::Shipped {
                tracking_number: e.tracking_number,
            },
            e.order_id,
            e.occur_time,
        ),
        Event::Delivered(e) => (OrderEvent::Delivered, e.order_id, e.occur_time),
    };
    Ok(Decoded {
        event,
        order_id,
        at: millis(at.as_ref()),
    })
}

/// A history entry for GetOrderHistory (an undecodable payload shows as an entry without
/// its event).
pub fn history_entry(
    version: i64,
    event_id: &str,
    kind: &str,
    payload: &[u8],
    at: i64,
) -> pb::OrderHistoryEntry {
    pb::OrderHistoryEntry {
        version,
        event_id: event_id.to_owned(),
        record_time: Some(timestamp(at)),
        event: decode_proto(kind, payload).ok(),
    }
}
