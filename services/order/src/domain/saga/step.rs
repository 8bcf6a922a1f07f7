//! Where a saga is ([`Step`], stored by name), and the idempotency key of each of its calls.

use crate::domain::OrderError;

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Hold stock.
    Reserve,
    /// Charge the card.
    Charge,
    /// Sell the held stock; then the order is confirmed.
    Confirm,
    /// Undo what was done (refund, release), then reject the order.
    Compensate,
    /// The order is rejected; refund a charge whose answer was never seen, if it happened.
    VoidPayment,
    /// A recorded cancellation: refund, return the stock, then mark the order cancelled.
    Cancel,
    /// Nothing left to do.
    Done,
}

impl Step {
    /// Every step, in the order a saga may pass them.
    pub const ALL: [Self; 7] = [
        Self::Reserve,
        Self::Charge,
        Self::Confirm,
        Self::Compensate,
        Self::VoidPayment,
        Self::Cancel,
        Self::Done,
    ];

    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserve => "reserve",
            Self::Charge => "charge",
            Self::Confirm => "confirm",
            Self::Compensate => "compensate",
            Self::VoidPayment => "void_payment",
            Self::Cancel => "cancel",
            Self::Done => "done",
        }
    }

    /// From the stored form; anything else is an error, never a silent `Done`.
    ///
    /// # Errors
    /// [`OrderError::UnknownSagaState`].
    pub fn parse(order_id: &str, s: &str) -> Result<Self, OrderError> {
        Ok(match s {
            "reserve" => Self::Reserve,
            "charge" => Self::Charge,
            "confirm" => Self::Confirm,
            "compensate" => Self::Compensate,
            "void_payment" => Self::VoidPayment,
            "cancel" => Self::Cancel,
            "done" => Self::Done,
            other => {
                return Err(OrderError::UnknownSagaState {
                    order_id: order_id.to_owned(),
                    state: other.to_owned(),
                });
            }
        })
    }

    /// Steps that give back money or stock: past the horizon they flag, never give up.
    pub(super) fn returns_money_or_stock(self) -> bool {
        matches!(self, Self::Compensate | Self::VoidPayment | Self::Cancel)
    }
}

/// What a participant call is for; each has its own idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// The order's stock reservation.
    Reservation,
    /// The order's charge.
    Charge,
    /// The refund that compensates a rejected order.
    CompensationRefund,
    /// The refund of a cancelled order.
    CancellationRefund,
    /// The refund of a charge of a rejected order whose answer was never seen.
    Void {
        /// The charge found.
        payment_id: &'a str,
    },
}

/// The one place idempotency keys (and the reservation id) are derived from the order id,
/// so a resumed saga repeats nothing.
pub fn idempotency_key(order_id: &str, purpose: &Purpose<'_>) -> String {
    match purpose {
        Purpose::Reservation | Purpose::Charge => format!("order-{order_id}"),
        Purpose::CompensationRefund => format!("order-{order_id}-refund"),
        Purpose::CancellationRefund => format!("order-{order_id}-cancel"),
        Purpose::Void { payment_id } => format!("order-{order_id}-void-{payment_id}"),
    }
}
