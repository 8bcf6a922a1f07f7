//! The payment context's model and rules: money, payments and their life (CAPTURED →
//! REFUNDED, or DECLINED for good), invoices, what a valid charge or refund request is, the
//! request fingerprints behind idempotency keys, and the simulated card provider. Pure: no
//! I/O, no generated or storage types.

mod charge;
mod money;
pub mod provider;
mod refund;

pub use charge::*;
pub use money::*;
pub use provider::{ProviderOutcome, TestCard};
pub use refund::*;

use polyshop_platform::status::Violations;

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// The money was taken.
    Captured,
    /// The provider refused the card; final.
    Declined,
    /// The money was returned in full; final.
    Refunded,
}

impl PaymentStatus {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Captured => "captured",
            Self::Declined => "declined",
            Self::Refunded => "refunded",
        }
    }

    /// From the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "captured" => Some(Self::Captured),
            "declined" => Some(Self::Declined),
            "refunded" => Some(Self::Refunded),
            _ => None,
        }
    }
}

/// A charge against a card, with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// UUIDv7, so ids sort by creation.
    pub id: String,
    /// The order paid for.
    pub order_id: String,
    /// Who pays.
    pub user_id: String,
    /// Amount charged.
    pub amount: Money,
    /// Status.
    pub status: PaymentStatus,
    /// Minor units refunded so far, in the amount's currency: 0 or the whole amount.
    pub refunded_minor: i64,
    /// The provider's decline code when DECLINED, else empty.
    pub decline_code: String,
    /// Last four digits of the card.
    pub card_last4: String,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
}

impl Payment {
    /// What has been refunded, in the payment's currency.
    pub fn refunded_amount(&self) -> Money {
        Money {
            amount_minor: self.refunded_minor,
            currency_code: self.amount.currency_code.clone(),
        }
    }
}

/// The invoice of a captured payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// Gap-free sequence number, 1, 2, 3…
    pub number: i64,
    /// The payment.
    pub payment_id: String,
    /// The order.
    pub order_id: String,
    /// The customer.
    pub user_id: String,
    /// What was paid for; they add up to `total`.
    pub line_items: Vec<LineItem>,
    /// The total.
    pub total: Money,
    /// Epoch ms.
    pub issued_at: i64,
}

/// The human-readable invoice number: `INV-000042`.
pub fn invoice_number(number: i64) -> String {
    format!("INV-{number:06}")
}

/// What happened to a payment, published as an integration event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    /// A new payment was captured.
    Captured(Payment),
    /// A new payment was declined.
    Declined(Payment),
    /// A captured payment was refunded in full.
    Refunded {
        /// The payment after the refund.
        payment: Payment,
        /// Why.
        reason: String,
    },
}

impl PaymentEvent {
    /// The event a freshly charged payment raises.
    pub fn charged(payment: &Payment) -> Self {
        match payment.status {
            PaymentStatus::Declined => Self::Declined(payment.clone()),
            PaymentStatus::Captured | PaymentStatus::Refunded => Self::Captured(payment.clone()),
        }
    }
}

/// What can go wrong in the payment context. Mapped to gRPC in `grpc::status`.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The request breaks field rules.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// The idempotency key was used before with different parameters.
    #[error("idempotency key was already used with different parameters")]
    IdempotencyKeyReused,
    /// The card provider cannot be reached; nothing was charged or stored.
    #[error("the card provider is unavailable; nothing was charged")]
    ProviderUnavailable,
    /// No such payment, or not the caller's.
    #[error("payment not found")]
    PaymentNotFound,
    /// Refunding a payment that took no money.
    #[error("payment was declined; there is nothing to refund")]
    NotCaptured,
    /// Refunding a payment a second time (with another idempotency key).
    #[error("payment was already refunded")]
    AlreadyRefunded,
    /// Asking for the invoice of a declined payment.
    #[error("a declined payment has no invoice")]
    NoInvoice,
    /// Storage failed or a stored invariant is broken.
    #[error("internal: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<Violations> for PaymentError {
    fn from(v: Violations) -> Self {
        Self::Invalid(v)
    }
}

/// Whether a stored idempotency record answers a repeat of the request with `fingerprint`:
/// the same parameters replay the stored result, different ones are refused.
///
/// # Errors
/// `IdempotencyKeyReused` when the fingerprints differ.
pub fn check_replay(stored: &str, fingerprint: &str) -> Result<(), PaymentError> {
    if stored == fingerprint {
        Ok(())
    } else {
        Err(PaymentError::IdempotencyKeyReused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoice_numbers_are_zero_padded_to_six_digits() {
        assert_eq!(invoice_number(1), "INV-000001");
        assert_eq!(invoice_number(42), "INV-000042");
        assert_eq!(invoice_number(1_234_567), "INV-1234567");
    }

    #[test]
    fn statuses_round_trip_through_their_stored_form() {
        for s in [
            PaymentStatus::Captured,
            PaymentStatus::Declined,
            PaymentStatus::Refunded,
        ] {
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(PaymentStatus::parse("pending"), None);
    }

    #[test]
    fn a_replay_with_other_parameters_is_refused() {
        assert!(check_replay("abc", "abc").is_ok());
        assert!(matches!(
            check_replay("abc", "abd"),
            Err(PaymentError::IdempotencyKeyReused)
        ));
    }
}
