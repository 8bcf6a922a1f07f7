//! The simulated card provider behind [`CardProvider`]: outcomes by test card
//! ([`domain::provider`](crate::domain::provider)), and, as a real provider does with an
//! idempotency key (Stripe keeps one for 24 hours), a memory of the keys it settled. A charge
//! that reaches it twice with one key (retried after a lost answer, or a duplicate that raced
//! past the stored key) gets the first outcome back and takes the money once.
//!
//! The memory is this process's: instances of the payment service each simulate their own
//! provider, where a real one would be shared.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, PoisonError},
};

use crate::{
    app::{CardProvider, ProviderCharge},
    domain::{Money, ProviderOutcome, TestCard, provider},
};

/// Keys remembered at most; the oldest is forgotten first. The service checks its own stored
/// keys before asking, so only the window of a retry or race needs the provider's memory.
const KEYS_KEPT: usize = 100_000;

/// What the provider settled under one key.
#[derive(Debug)]
struct Settled {
    card: TestCard,
    amount: Money,
    outcome: ProviderOutcome,
}

#[derive(Debug, Default)]
struct Memory {
    settled: HashMap<String, Settled>,
    /// Keys in the order they were settled, to forget the oldest.
    order: VecDeque<String>,
    captures: u64,
}

/// The simulated provider; see the module docs.
#[derive(Debug, Default)]
pub struct SimulatedProvider {
    memory: Mutex<Memory>,
}

impl SimulatedProvider {
    /// How many times it took money.
    pub fn captures(&self) -> u64 {
        self.lock().captures
    }

    /// What it settled under `idempotency_key`, if it saw that key.
    pub fn settled(&self, idempotency_key: &str) -> Option<ProviderOutcome> {
        let memory = self.lock();
        memory
            .settled
            .get(idempotency_key)
            .map(|s| s.outcome.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        // The memory is consistent after every statement, so a panicked holder left it usable.
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CardProvider for SimulatedProvider {
    async fn charge(&self, request: ProviderCharge<'_>) -> ProviderOutcome {
        let mut memory = self.lock();
        if let Some(seen) = memory.settled.get(request.idempotency_key) {
            return if seen.card == request.card && seen.amount == *request.amount {
                seen.outcome.clone()
            } else {
                ProviderOutcome::KeyReused
            };
        }
        let outcome = provider::outcome(request.card);
        // Nothing happened, so there is nothing to remember: a retry asks again.
        if outcome == ProviderOutcome::Unavailable {
            return outcome;
        }
        if matches!(outcome, ProviderOutcome::Captured { .. }) {
            memory.captures += 1;
        }
        let key = request.idempotency_key.to_owned();
        memory.settled.insert(
            key.clone(),
            Settled {
                card: request.card,
                amount: request.amount.clone(),
                outcome: outcome.clone(),
            },
        );
        memory.order.push_back(key);
        if memory.order.len() > KEYS_KEPT
            && let Some(oldest) = memory.order.pop_front()
        {
            memory.settled.remove(&oldest);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(amount_minor: i64) -> Money {
        Money {
            amount_minor,
            currency_code: "EUR".into(),
        }
    }

    async fn ask(p: &SimulatedProvider, key: &str, card: TestCard, amount: i64) -> ProviderOutcome {
        let amount = eur(amount);
        p.charge(ProviderCharge {
            idempotency_key: key,
            card,
            amount: &amount,
        })
        .await
    }

    #[tokio::test]
    async fn two_charges_with_one_key_take_the_money_once() {
        let p = SimulatedProvider::default();
        let first = ask(&p, "k1", TestCard::Visa, 1000).await;
        let again = ask(&p, "k1", TestCard::Visa, 1000).await;
        assert_eq!(first, ProviderOutcome::Captured { card_last4: "4242" });
        assert_eq!(again, first);
        assert_eq!(p.captures(), 1);
        assert_eq!(p.settled("k1"), Some(first));
        ask(&p, "k2", TestCard::Visa, 1000).await;
        assert_eq!(p.captures(), 2, "another key is another charge");
    }

    #[tokio::test]
    async fn a_key_with_another_card_or_amount_is_refused_and_charges_nothing() {
        let p = SimulatedProvider::default();
        ask(&p, "k1", TestCard::Visa, 1000).await;
        let other_amount = ask(&p, "k1", TestCard::Visa, 2000).await;
        let other_card = ask(&p, "k1", TestCard::Mastercard, 1000).await;
        assert_eq!(other_amount, ProviderOutcome::KeyReused);
        assert_eq!(other_card, ProviderOutcome::KeyReused);
        assert_eq!(p.captures(), 1);
    }

    #[tokio::test]
    async fn an_unavailable_answer_is_not_remembered() {
        let p = SimulatedProvider::default();
        let outcome = ask(&p, "k1", TestCard::ProviderUnavailable, 1000).await;
        assert_eq!(outcome, ProviderOutcome::Unavailable);
        assert_eq!(p.settled("k1"), None);
        assert_eq!(p.captures(), 0);
    }
}
