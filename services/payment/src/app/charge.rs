//! Charge: one payment per idempotency key, whatever the provider answered.

use super::{CardProvider, NewCharge, PaymentRepository, ProviderCharge, Recorded};
use crate::domain::{ChargeDraft, PaymentError, ProviderOutcome, check_replay};

/// Charges the card of `draft`. A key seen before with the same parameters returns the stored
/// payment without calling the provider again; a decline is a stored DECLINED payment.
///
/// The provider is asked before the key is claimed, with the same idempotency key, so it
/// charges once however many concurrent duplicates ask it; the claim then decides which of
/// them stores its payment, and the others answer with that one.
///
/// # Errors
/// `Invalid`; `IdempotencyKeyReused` for the key with other parameters (here or at the
/// provider); `ProviderUnavailable` (nothing stored); `Internal`.
pub async fn charge<R: PaymentRepository, P: CardProvider>(
    repo: &R,
    provider: &P,
    draft: ChargeDraft,
    now: i64,
) -> Result<Recorded, PaymentError> {
    let valid = draft.validate()?;
    if let Some(stored) = repo.find_charge(&valid.idempotency_key).await? {
        check_replay(&stored.fingerprint, &valid.fingerprint)?;
        return Ok(Recorded::Existing(stored));
    }
    let outcome = provider
        .charge(ProviderCharge {
            idempotency_key: &valid.idempotency_key,
            card: valid.card,
            amount: &valid.amount,
        })
        .await;
    let payment = valid
        .payment(polyshop_platform::new_id(), &outcome, now)
        .ok_or(match outcome {
            ProviderOutcome::KeyReused => PaymentError::IdempotencyKeyReused,
            _ => PaymentError::ProviderUnavailable,
        })?;
    let recorded = repo
        .record_charge(NewCharge {
            invoice_lines: valid.invoice_lines(),
            idempotency_key: valid.idempotency_key,
            fingerprint: valid.fingerprint.clone(),
            payment,
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
        app::memory::{MemoryRepository, draft},
        domain::{PaymentEvent, PaymentStatus},
        provider::SimulatedProvider,
    };

    #[tokio::test]
    async fn a_captured_charge_stores_the_payment_its_invoice_and_its_event() {
        let (repo, provider) = (MemoryRepository::default(), SimulatedProvider::default());
        let recorded = charge(&repo, &provider, draft("k1", "tok_visa", 1500), 5)
            .await
            .expect("charge");
        let Recorded::New(payment) = recorded else {
            panic!("a first charge is new");
        };
        assert_eq!(payment.status, PaymentStatus::Captured);
        assert_eq!(payment.card_last4, "4242");
        assert_eq!(repo.invoice_numbers(), [1]);
        assert_eq!(repo.events(), [PaymentEvent::Captured(payment)]);
    }

    #[tokio::test]
    async fn a_decline_is_a_stored_result_without_an_invoice() {
        let (repo, provider) = (MemoryRepository::default(), SimulatedProvider::default());
        let payment = charge(
            &repo,
            &provider,
            draft("k1", "tok_insufficientFunds", 1500),
            5,
        )
        .await
        .expect("a decline is not an error")
        .into_payment();
        assert_eq!(payment.status, PaymentStatus::Declined);
        assert_eq!(payment.decline_code, "insufficient_funds");
        assert!(repo.invoice_numbers().is_empty());
        assert_eq!(repo.events(), [PaymentEvent::Declined(payment)]);
    }

    #[tokio::test]
    async fn an_unavailable_provider_stores_nothing() {
        let (repo, provider) = (MemoryRepository::default(), SimulatedProvider::default());
        let err = charge(
            &repo,
            &provider,
            draft("k1", "tok_providerUnavailable", 1500),
            5,
        )
        .await
        .expect_err("unavailable");
        assert!(matches!(err, PaymentError::ProviderUnavailable));
        assert_eq!(repo.payment_count(), 0);
        assert!(repo.events().is_empty());
    }

    #[tokio::test]
    async fn a_repeat_returns_the_stored_payment_and_other_parameters_are_refused() {
        let (repo, provider) = (MemoryRepository::default(), SimulatedProvider::default());
        let first = charge(&repo, &provider, draft("k1", "tok_visa", 1500), 5)
            .await
            .expect("charge")
            .into_payment();
        let again = charge(&repo, &provider, draft("k1", "tok_visa", 1500), 6)
            .await
            .expect("repeat");
        assert_eq!(again.into_payment(), first);
        let err = charge(&repo, &provider, draft("k1", "tok_visa", 1600), 7)
            .await
            .expect_err("other amount");
        assert!(matches!(err, PaymentError::IdempotencyKeyReused));
        assert_eq!(repo.payment_count(), 1);
        assert_eq!(repo.events().len(), 1);
    }

    #[tokio::test]
    async fn a_duplicate_that_lost_the_claim_answers_with_the_winners_payment() {
        let (repo, provider) = (MemoryRepository::default(), SimulatedProvider::default());
        let first = charge(&repo, &provider, draft("k1", "tok_visa", 1500), 5)
            .await
            .expect("charge")
            .into_payment();
        // As if this call read the key before the winner committed.
        repo.miss_next_charge_reads(2);
        let racer = charge(&repo, &provider, draft("k1", "tok_visa", 1500), 6)
            .await
            .expect("racer");
        assert_eq!(racer.into_payment(), first);
        let err = charge(&repo, &provider, draft("k1", "tok_mastercard", 1500), 6)
            .await
            .expect_err("racer with other parameters");
        assert!(matches!(err, PaymentError::IdempotencyKeyReused));
        assert_eq!(repo.payment_count(), 1);
    }

    #[tokio::test]
    async fn the_provider_gets_the_key_so_a_duplicate_that_reaches_it_is_charged_once() {
        let (repo, provider) = (MemoryRepository::default(), SimulatedProvider::default());
        // Both calls miss the stored key, as two racing duplicates (or a retry whose first
        // answer was lost before it was stored) would: both reach the provider.
        repo.miss_next_charge_reads(2);
        let first = charge(&repo, &provider, draft("k1", "tok_visa", 1500), 5).await;
        let second = charge(&repo, &provider, draft("k1", "tok_visa", 1500), 6).await;
        let first = first.expect("charge").into_payment();
        assert_eq!(second.expect("duplicate").into_payment(), first);
        assert_eq!(
            provider.settled("k1"),
            Some(ProviderOutcome::Captured { card_last4: "4242" }),
            "the provider saw the charge's key"
        );
        assert_eq!(provider.captures(), 1, "the card was charged once");
        assert_eq!(repo.payment_count(), 1);
    }
}
