//! What a saga asks of its participants ([`Command`]), what they answer ([`Outcome`]), and what
//! a transition tells the app to write ([`Write`]).

use crate::domain::{Order, OrderEvent, RequestedLine};

/// A participant call the saga needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Hold stock for every line.
    Reserve {
        /// Reservation id.
        reservation_id: String,
        /// What to hold.
        items: Vec<RequestedLine>,
    },
    /// Charge the order's total.
    Charge {
        /// Idempotency key.
        key: String,
        /// The priced order.
        order: Box<Order>,
        /// Card token.
        payment_method_token: String,
    },
    /// Sell the held stock.
    ConfirmReservation {
        /// Reservation id.
        reservation_id: String,
    },
    /// Refund a payment in full.
    Refund {
        /// The payment.
        payment_id: String,
        /// Idempotency key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// Return held or sold stock.
    Release {
        /// Reservation id.
        reservation_id: String,
        /// Why.
        reason: &'static str,
    },
    /// Refund every captured charge of the order (answers were lost).
    VoidCharges {
        /// The order.
        order_id: String,
    },
    /// No call: record the saga's end.
    Finish,
}

impl Command {
    /// Short name, for logs and failpoints.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Reserve { .. } => "reserve",
            Self::Charge { .. } => "charge",
            Self::ConfirmReservation { .. } => "confirm_reservation",
            Self::Refund { .. } => "refund",
            Self::Release { .. } => "release",
            Self::VoidCharges { .. } => "void_charges",
            Self::Finish => "finish",
        }
    }

    /// The answer of a participant that refused this command on business grounds.
    pub fn refusal(&self, detail: &str) -> Outcome {
        let detail = detail.to_owned();
        match self {
            Self::Reserve { .. } => Outcome::OutOfStock { detail },
            Self::Charge { .. } => Outcome::Declined { detail },
            Self::ConfirmReservation { .. } => Outcome::ReservationLapsed { detail },
            Self::Refund { .. } | Self::VoidCharges { .. } => Outcome::RefundRefused { detail },
            // Nothing refuses a release or the end; an unknown reservation counts as returned.
            Self::Release { .. } => Outcome::Released,
            Self::Finish => Outcome::Finished,
        }
    }
}

/// A participant's answer to a command, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stock is held.
    Reserved,
    /// Not enough stock.
    OutOfStock {
        /// Detail.
        detail: String,
    },
    /// Paid.
    Charged {
        /// The captured payment.
        payment_id: String,
    },
    /// The card was declined or the charge refused.
    Declined {
        /// Detail.
        detail: String,
    },
    /// The held stock is sold.
    ReservationConfirmed,
    /// The hold expired before it was confirmed.
    ReservationLapsed {
        /// Detail.
        detail: String,
    },
    /// Refunded (or it already was).
    Refunded,
    /// The payment service refused the refund.
    RefundRefused {
        /// Detail.
        detail: String,
    },
    /// The stock is back (or there was nothing to return).
    Released,
    /// Every captured charge of the order is refunded.
    Voided,
    /// The answer to [`Command::Finish`].
    Finished,
    /// No answer: the participant is away, its breaker is open, or the deadline passed.
    Unreachable {
        /// Whether the request may have reached it (false only when it provably did not).
        sent: bool,
        /// Detail.
        detail: String,
    },
}

/// What the app must write after a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Nothing: a resumed saga repeats the step idempotently.
    Nothing,
    /// The saga's progress.
    Save,
    /// These events for the order, with the saga's progress.
    Append(Vec<OrderEvent>),
}
