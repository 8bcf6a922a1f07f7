//! The inventory context's model and rules: stock levels, reservations and their life
//! (HELD → CONFIRMED or RELEASED), and what the contract cannot say of a valid request.
//! Pure: no I/O.

mod rules;

pub use rules::*;

use polyshop_platform::status::Violations;

/// Stock of one product. Invariant kept by the store: `0 ≤ reserved ≤ on_hand`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    /// The product.
    pub product_id: String,
    /// Units physically in stock, reserved ones included.
    pub on_hand: i32,
    /// Units held by HELD reservations.
    pub reserved: i32,
    /// Epoch ms of the last change; `None` for a product never stocked.
    pub updated_at: Option<i64>,
}

impl StockLevel {
    /// A product without a stock row: nothing on hand, nothing reserved. GetStock answers
    /// this for any id it has no row for (one whose `product.created` has not arrived, or
    /// one the catalog never had): reading stock never says "no such product"; only
    /// counting it does ([`InventoryError::ProductNotFound`]).
    pub fn empty(product_id: &str) -> Self {
        Self {
            product_id: product_id.to_owned(),
            on_hand: 0,
            reserved: 0,
            updated_at: None,
        }
    }

    /// Units that can still be reserved.
    pub fn available(&self) -> i32 {
        self.on_hand - self.reserved
    }
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Stock is held.
    Held,
    /// The held stock was sold (taken off `on_hand`).
    Confirmed,
    /// The held stock was returned, on request or because the hold expired.
    Released,
}

impl ReservationStatus {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Confirmed => "confirmed",
            Self::Released => "released",
        }
    }

    /// From the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "held" => Some(Self::Held),
            "confirmed" => Some(Self::Confirmed),
            "released" => Some(Self::Released),
            _ => None,
        }
    }
}

/// A quantity of one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationItem {
    /// The product.
    pub product_id: String,
    /// Units, 1–10000 (the contract's `ReservationItem.quantity`).
    pub quantity: i32,
}

/// Stock held for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Caller-chosen id, also the idempotency key of ReserveStock.
    pub id: String,
    /// What is held, ordered by product id.
    pub items: Vec<ReservationItem>,
    /// Status.
    pub status: ReservationStatus,
    /// Epoch ms when a HELD reservation is released by the sweeper.
    pub expires_at: i64,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
    /// Why it was released; empty otherwise.
    pub release_reason: String,
}

/// What to do with a HELD reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Sell the held stock: `on_hand -= q`, `reserved -= q`.
    Confirm,
    /// Return the held stock: `reserved -= q`.
    Release {
        /// Why, for the record.
        reason: String,
    },
    /// Return the stock whatever happened to it: held stock as in `Release`, sold stock of
    /// a confirmed reservation back on hand (`on_hand += q`) — a cancelled order.
    Return {
        /// Why, for the record.
        reason: String,
    },
}

impl Settlement {
    /// The status the reservation ends in.
    pub fn target(&self) -> ReservationStatus {
        match self {
            Self::Confirm => ReservationStatus::Confirmed,
            Self::Release { .. } | Self::Return { .. } => ReservationStatus::Released,
        }
    }
}

/// What a settlement means for a reservation in a given status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Change the status and move the stock.
    Apply,
    /// Already in the target status: a repeat, answer with the reservation as it is.
    AlreadyDone,
}

/// What happened to stock, published as an integration event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryEvent {
    /// The quantity on hand was set (SetStock).
    StockAdjusted {
        /// The stock after the change.
        stock: StockLevel,
        /// On hand before (0 for a product never stocked).
        previous_on_hand: i32,
    },
    /// Stock was held for a new reservation.
    StockReserved(Reservation),
    /// Held stock was sold.
    StockConfirmed(Reservation),
    /// Stock was returned: a hold released on request or by the sweeper, or a confirmed
    /// reservation returned.
    StockReleased(Reservation),
}

impl InventoryEvent {
    /// The event of applying `settlement`, given the reservation after it.
    pub fn settled(settlement: &Settlement, reservation: Reservation) -> Self {
        match settlement {
            Settlement::Confirm => Self::StockConfirmed(reservation),
            Settlement::Release { .. } | Settlement::Return { .. } => {
                Self::StockReleased(reservation)
            }
        }
    }
}

/// What can go wrong in the inventory context. Mapped to gRPC in `grpc::status`.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The request breaks field rules.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// SetStock would leave fewer units on hand than are reserved.
    #[error("{reserved} units of {product_id} are reserved; on hand cannot go below that")]
    BelowReserved {
        /// The product.
        product_id: String,
        /// Units currently reserved.
        reserved: i32,
    },
    /// SetStock for a product inventory has no stock row for: the catalog never created it,
    /// or its `product.created` has not arrived yet. Nothing was written.
    #[error("product is not known to inventory; if it was just created, retry shortly")]
    ProductNotFound,
    /// At least one item cannot be held; nothing was reserved.
    #[error("not enough stock for {}", .0.join(", "))]
    InsufficientStock(Vec<String>),
    /// No reservation with this id.
    #[error("reservation not found")]
    ReservationNotFound,
    /// Confirming a reservation that was released.
    #[error("reservation was already released")]
    ReservationReleased,
    /// Releasing a reservation that was confirmed.
    #[error("reservation was already confirmed")]
    ReservationConfirmed,
    /// Storage failed or a stored invariant is broken.
    #[error("internal: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<Violations> for InventoryError {
    fn from(v: Violations) -> Self {
        Self::Invalid(v)
    }
}
