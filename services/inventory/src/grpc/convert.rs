//! Proto ↔ domain conversion for the inventory context.

use polyshop::inventory::v1 as pb;
use polyshop_platform::timestamp;

use crate::domain::{Reservation, ReservationItem, ReservationStatus, StockLevel};

pub fn stock(s: StockLevel) -> pb::StockLevel {
    pb::StockLevel {
        quantity_available: s.available(),
        product_id: s.product_id,
        quantity_on_hand: s.on_hand,
        quantity_reserved: s.reserved,
        update_time: s.updated_at.map(timestamp),
    }
}

pub fn reservation(r: Reservation) -> pb::Reservation {
    pb::Reservation {
        reservation_id: r.id,
        items: r.items.into_iter().map(item).collect(),
        status: status(r.status) as i32,
        expire_time: Some(timestamp(r.expires_at)),
        create_time: Some(timestamp(r.created_at)),
        release_reason: r.release_reason,
    }
}

fn item(i: ReservationItem) -> pb::ReservationItem {
    pb::ReservationItem {
        product_id: i.product_id,
        quantity: i.quantity,
    }
}

/// Items as sent; validation happens in the use case, which names them by their index.
pub fn items_in(items: Vec<pb::ReservationItem>) -> Vec<ReservationItem> {
    items
        .into_iter()
        .map(|i| ReservationItem {
            product_id: i.product_id,
            quantity: i.quantity,
        })
        .collect()
}

fn status(s: ReservationStatus) -> pb::ReservationStatus {
    match s {
        ReservationStatus::Held => pb::ReservationStatus::Held,
        ReservationStatus::Confirmed => pb::ReservationStatus::Confirmed,
        ReservationStatus::Released => pb::ReservationStatus::Released,
    }
}
