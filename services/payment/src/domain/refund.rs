//! What a valid Refund is, and the rule that a payment is refunded once, in full, and only
//! when money was captured.

use super::{Payment, PaymentError, PaymentStatus, fingerprint};

/// A refund request, trimmed and fingerprinted (its fields passed the contract's rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRefund {
    /// Idempotency key.
    pub idempotency_key: String,
    /// The payment to refund.
    pub payment_id: String,
    /// Why, trimmed; may be empty.
    pub reason: String,
    /// Fingerprint of the parameters, stored with the idempotency key.
    pub fingerprint: String,
}

/// A Refund request with its reason trimmed and its fingerprint. Every field rule of a
/// Refund (key, payment id, reason's length) is the contract's, checked before the handler.
pub fn validate_refund(idempotency_key: String, payment_id: String, reason: &str) -> ValidRefund {
    let reason = reason.trim().to_owned();
    let fingerprint = fingerprint(["refund/v1", &payment_id, &reason]);
    ValidRefund {
        idempotency_key,
        payment_id,
        reason,
        fingerprint,
    }
}

/// Whether a payment in `status` may be refunded now. Only CAPTURED may: a DECLINED one took
/// nothing, a REFUNDED one gave everything back already, so nothing is ever refunded twice.
///
/// # Errors
/// `NotCaptured` or `AlreadyRefunded`.
pub fn check_refundable(status: PaymentStatus) -> Result<(), PaymentError> {
    match status {
        PaymentStatus::Captured => Ok(()),
        PaymentStatus::Declined => Err(PaymentError::NotCaptured),
        PaymentStatus::Refunded => Err(PaymentError::AlreadyRefunded),
    }
}

impl Payment {
    /// The payment after a full refund at `now`.
    #[must_use]
    pub fn refunded(self, now: i64) -> Self {
        Self {
            status: PaymentStatus::Refunded,
            refunded_minor: self.amount.amount_minor,
            updated_at: now.max(self.updated_at),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;

    #[test]
    fn only_a_captured_payment_can_be_refunded() {
        assert!(check_refundable(PaymentStatus::Captured).is_ok());
        assert!(matches!(
            check_refundable(PaymentStatus::Declined),
            Err(PaymentError::NotCaptured)
        ));
        assert!(matches!(
            check_refundable(PaymentStatus::Refunded),
            Err(PaymentError::AlreadyRefunded)
        ));
    }

    #[test]
    fn a_refund_returns_exactly_the_captured_amount() {
        let payment = Payment {
            id: "p1".into(),
            order_id: "o1".into(),
            user_id: "u1".into(),
            amount: Money {
                amount_minor: 1999,
                currency_code: "EUR".into(),
            },
            status: PaymentStatus::Captured,
            refunded_minor: 0,
            decline_code: String::new(),
            card_last4: "4242".into(),
            created_at: 10,
            updated_at: 10,
        };
        let refunded = payment.refunded(20);
        assert_eq!(refunded.status, PaymentStatus::Refunded);
        assert_eq!(refunded.refunded_amount(), refunded.amount);
        assert_eq!(refunded.updated_at, 20);
    }

    #[test]
    fn refund_fingerprints_cover_the_payment_and_the_reason() {
        let fp = |payment: &str, reason: &str| {
            validate_refund("k".into(), payment.into(), reason).fingerprint
        };
        assert_eq!(fp("p1", "out of stock"), fp("p1", " out of stock "));
        assert_ne!(fp("p1", "out of stock"), fp("p2", "out of stock"));
        assert_ne!(fp("p1", "out of stock"), fp("p1", "customer asked"));
    }
}
