//! The Order aggregate, event-sourced: its state is what its events say. Commands are
//! decided against the current state and produce events; `apply` is the only way state
//! changes, shared by the aggregate, the snapshots and the read-model projection. Pure: no I/O.

mod aggregate;
mod rules;
pub mod saga;

pub use aggregate::*;
pub use rules::*;

use polyshop_platform::status::Violations;

/// An amount in minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Money {
    /// Minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
}

/// One priced line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    /// The product.
    pub product_id: String,
    /// Its name when ordered.
    pub product_name: String,
    /// Units.
    pub quantity: i32,
    /// Catalog price per unit when ordered.
    pub unit_price: Money,
}

impl OrderLine {
    /// unit price × quantity.
    pub fn total(&self) -> Money {
        Money {
            amount_minor: self
                .unit_price
                .amount_minor
                .saturating_mul(i64::from(self.quantity)),
            currency: self.unit_price.currency.clone(),
        }
    }
}

/// Where to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ShippingAddress {
    /// Recipient.
    pub recipient: String,
    /// Street.
    pub line1: String,
    /// Second line.
    pub line2: String,
    /// City.
    pub city: String,
    /// Region.
    pub region: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country_code: String,
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// The saga is running.
    Pending,
    /// Paid, stock sold.
    Confirmed,
    /// The saga failed and was compensated.
    Rejected,
    /// Cancelled after confirmation, refunded.
    Cancelled,
    /// With the carrier.
    Shipped,
    /// Received.
    Delivered,
    /// Cancellation recorded; refund and restock under way.
    Cancelling,
}

impl OrderStatus {
    /// Nothing more can happen to the order.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Rejected | Self::Cancelled | Self::Delivered)
    }

    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelling => "cancelling",
        }
    }
}

/// Why the saga rejected an order; stable once published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No such user.
    UserNotFound,
    /// The user is not active.
    UserInactive,
    /// A product does not exist or is inactive.
    ProductNotFound,
    /// Items priced in several currencies.
    CurrencyMismatch,
    /// Not enough stock.
    InsufficientStock,
    /// The card was declined.
    PaymentDeclined,
    /// A participant kept failing.
    ServiceUnavailable,
}

impl Rejection {
    /// Stable name, as in the proto enum.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::UserInactive => "USER_INACTIVE",
            Self::ProductNotFound => "PRODUCT_NOT_FOUND",
            Self::CurrencyMismatch => "CURRENCY_MISMATCH",
            Self::InsufficientStock => "INSUFFICIENT_STOCK",
            Self::PaymentDeclined => "PAYMENT_DECLINED",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    /// From the stable name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::UserNotFound,
            Self::UserInactive,
            Self::ProductNotFound,
            Self::CurrencyMismatch,
            Self::InsufficientStock,
            Self::PaymentDeclined,
            Self::ServiceUnavailable,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// What can go wrong in the order context. Mapped to gRPC in `grpc::status`.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The request breaks field rules.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// No such order (or not the caller's).
    #[error("order not found")]
    NotFound,
    /// The order's status does not allow this.
    #[error("{0}")]
    NotAllowed(String),
    /// Another writer appended to the order first.
    #[error("the order changed concurrently; retry")]
    Conflict,
    /// A participant needed to validate an order is unavailable; nothing was stored, so the
    /// same request (same key) may be sent again.
    #[error("{0}")]
    Unavailable(String),
    /// A stored saga is in a state this version does not know: it stops, loudly.
    #[error("saga of order {order_id} is in an unknown state {state:?}")]
    UnknownSagaState {
        /// The order.
        order_id: String,
        /// What was stored.
        state: String,
    },
    /// This instance's claim on the saga was taken over (it was paused or cut off past its
    /// lease): it must stop driving the saga; nothing of the refused write was stored.
    #[error("the claim on the saga of order {order_id} was taken over")]
    LeaseLost {
        /// The order.
        order_id: String,
    },
    /// Storage failed.
    #[error("internal: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<Violations> for OrderError {
    fn from(v: Violations) -> Self {
        Self::Invalid(v)
    }
}

impl From<sea_orm::DbErr> for OrderError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Internal(Box::new(e))
    }
}
