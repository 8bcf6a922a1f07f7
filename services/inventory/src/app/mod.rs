//! Use cases of the inventory context, over the [`InventoryRepository`] port: reading and
//! counting stock, reserving it, settling reservations, and sweeping expired holds.

mod reserve_stock;
mod settle_reservation;
mod stock;
mod sweep_expired;

pub use reserve_stock::*;
pub use settle_reservation::*;
pub use stock::*;
pub use sweep_expired::*;

use std::future::Future;

use crate::domain::{
    InventoryError, Reservation, ReservationItem, Settlement, StockLevel, Transition,
};

/// What ReserveStock stores: validated items in lock order and the hold's times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservation {
    /// Caller-chosen id, the idempotency key.
    pub id: String,
    /// Items, sorted by product id, each product once.
    pub items: Vec<ReservationItem>,
    /// Epoch ms when the hold expires.
    pub expires_at: i64,
    /// Epoch ms, also the stock rows' new `updated_at`.
    pub created_at: i64,
}

/// The outcome of a reserve: a new hold, or the stored one for a repeated id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// Stock was held now.
    New(Reservation),
    /// The id was reserved before; nothing changed.
    Existing(Reservation),
}

impl Reserved {
    /// The reservation, new or stored.
    pub fn into_reservation(self) -> Reservation {
        match self {
            Self::New(r) | Self::Existing(r) => r,
        }
    }
}

/// Storage of stock and reservations. Every method that moves stock runs in one database
/// transaction and keeps `0 ≤ reserved ≤ on_hand` under concurrent calls; that transaction
/// also records the change's [`crate::domain::InventoryEvent`], and a call that changes
/// nothing (a repeat) records none.
pub trait InventoryRepository: Send + Sync + 'static {
    /// The stock row of a product, if it was ever stocked.
    fn stock(
        &self,
        product_id: &str,
    ) -> impl Future<Output = Result<Option<StockLevel>, InventoryError>> + Send;

    /// Sets `on_hand` of a product's existing row, with `StockAdjusted`; `ProductNotFound`
    /// without a row (only `product.created` creates one), `BelowReserved` if more is
    /// reserved.
    fn set_on_hand(
        &self,
        product_id: &str,
        on_hand: i32,
        now: i64,
    ) -> impl Future<Output = Result<StockLevel, InventoryError>> + Send;

    /// Holds every item or none (`InsufficientStock` with the short products), with
    /// `StockReserved`. A reservation id seen before returns the stored reservation and
    /// reserves nothing.
    fn reserve(
        &self,
        new: NewReservation,
    ) -> impl Future<Output = Result<Reserved, InventoryError>> + Send;

    /// Moves a reservation out of HELD as the domain's [`crate::domain::settle`] decides, and
    /// the stock with it, with `StockConfirmed` or `StockReleased`
    /// ([`crate::domain::InventoryEvent::settled`]). Only one of two racing settlements
    /// applies.
    fn settle(
        &self,
        id: &str,
        settlement: &Settlement,
        now: i64,
    ) -> impl Future<Output = Result<(Reservation, Transition), InventoryError>> + Send;

    /// Ids of HELD reservations whose hold expired at `now`, oldest expiry first.
    fn expired(
        &self,
        now: i64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<String>, InventoryError>> + Send;
}
