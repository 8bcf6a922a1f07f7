//! Refund: a captured payment is returned in full, once.

use super::{NewRefund, PaymentRepository, Recorded};
use crate::domain::{PaymentError, check_replay, validate_refund};

/// Refunds payment `payment_id` in full. The same key with the same parameters returns the
/// stored result; a different key on a refunded payment is refused, so no more than was
/// captured is ever returned.
///
/// # Errors
/// `IdempotencyKeyReused`; `PaymentNotFound`; `NotCaptured` for a declined
/// payment; `AlreadyRefunded`; `Internal`.
pub async fn refund<R: PaymentRepository>(
    repo: &R,
    idempotency_key: String,
    payment_id: String,
    reason: &str,
    now: i64,
) -> Result<Recorded, PaymentError> {
    let valid = validate_refund(idempotency_key, payment_id, reason);
    let recorded = repo
        .refund(NewRefund {
            idempotency_key: valid.idempotency_key,
            fingerprint: valid.fingerprint.clone(),
            payment_id: valid.payment_id,
            reason: valid.reason,
            now,
        })
        .await?;
    if let Recorded::Existing(stored) = &recorded {
        check_replay(&stored.fingerprint, &valid.fingerprint)?;
    }
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        app::{
            charge,
            memory::{MemoryRepository, draft},
        },
        domain::{PaymentEvent, PaymentStatus},
    };

    async fn captured(repo: &MemoryRepository, token: &str) -> String {
        let provider = crate::provider::SimulatedProvider::default();
        charge(repo, &provider, draft("c1", token, 900), 1)
            .await
            .expect("charge")
            .into_payment()
            .id
    }

    #[tokio::test]
    async fn a_refund_returns_the_whole_amount_once_and_repeats_replay_it() {
        let repo = MemoryRepository::default();
        let id = captured(&repo, "tok_visa").await;
        let first = refund(&repo, "r1".into(), id.clone(), "out of stock", 2)
            .await
            .expect("refund");
        let Recorded::New(payment) = first else {
            panic!("a first refund is new");
        };
        assert_eq!(payment.status, PaymentStatus::Refunded);
        assert_eq!(payment.refunded_minor, 900);
        let again = refund(&repo, "r1".into(), id.clone(), "out of stock", 3)
            .await
            .expect("repeat");
        assert_eq!(again.into_payment(), payment);
        let err = refund(&repo, "r2".into(), id.clone(), "out of stock", 4)
            .await
            .expect_err("second refund");
        assert!(matches!(err, PaymentError::AlreadyRefunded));
        let err = refund(&repo, "r1".into(), id, "another reason", 4)
            .await
            .expect_err("reused key");
        assert!(matches!(err, PaymentError::IdempotencyKeyReused));
        let refunds = repo
            .events()
            .into_iter()
            .filter(|e| matches!(e, PaymentEvent::Refunded { .. }))
            .count();
        assert_eq!(refunds, 1);
    }

    #[tokio::test]
    async fn declined_and_unknown_payments_cannot_be_refunded() {
        let repo = MemoryRepository::default();
        let id = captured(&repo, "tok_chargeDeclined").await;
        let err = refund(&repo, "r1".into(), id, "", 2)
            .await
            .expect_err("declined");
        assert!(matches!(err, PaymentError::NotCaptured));
        let err = refund(&repo, "r2".into(), "nope".into(), "", 2)
            .await
            .expect_err("unknown");
        assert!(matches!(err, PaymentError::PaymentNotFound));
    }
}
