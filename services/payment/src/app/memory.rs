//! An in-memory [`PaymentRepository`] for use-case tests, with the same idempotency and
//! refund semantics as the store, and a knob that makes key reads miss so the race between
//! the read and the claim can be replayed deterministically.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use super::{ListFilter, NewCharge, NewRefund, PaymentRepository, Recorded, Stored};
use crate::domain::{
    ChargeDraft, ChargeLine, Invoice, Money, Payment, PaymentError, PaymentEvent, PaymentStatus,
    check_refundable,
};

/// A valid USD charge of one line, for user `user-1` and order `order-of-<key>`.
pub fn draft(key: &str, token: &str, amount_minor: i64) -> ChargeDraft {
    let usd = Money {
        amount_minor,
        currency_code: "USD".into(),
    };
    ChargeDraft {
        idempotency_key: key.into(),
        order_id: format!("order-of-{key}"),
        user_id: "user-1".into(),
        amount: Some(usd.clone()),
        payment_method_token: token.into(),
        line_items: vec![ChargeLine {
            description: "Mug".into(),
            quantity: 1,
            unit_price: Some(usd),
        }],
    }
}

#[derive(Debug, Default)]
struct State {
    payments: Vec<Payment>,
    /// key → (fingerprint, payment id), for charges and refunds.
    charge_keys: HashMap<String, (String, String)>,
    refund_keys: HashMap<String, (String, String)>,
    invoices: Vec<Invoice>,
    events: Vec<PaymentEvent>,
}

impl State {
    fn stored(&self, (fingerprint, id): &(String, String)) -> Option<Stored> {
        let payment = self.payments.iter().find(|p| p.id == *id)?.clone();
        Some(Stored {
            fingerprint: fingerprint.clone(),
            payment,
        })
    }
}

#[derive(Debug, Default)]
pub struct MemoryRepository {
    state: Mutex<State>,
    missed_reads: AtomicUsize,
}

impl MemoryRepository {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("lock")
    }

    pub fn payment_count(&self) -> usize {
        self.lock().payments.len()
    }

    pub fn invoice_numbers(&self) -> Vec<i64> {
        self.lock().invoices.iter().map(|i| i.number).collect()
    }

    pub fn events(&self) -> Vec<PaymentEvent> {
        self.lock().events.clone()
    }

    /// The next `n` `find_charge` calls find nothing.
    pub fn miss_next_charge_reads(&self, n: usize) {
        self.missed_reads.store(n, Ordering::SeqCst);
    }
}

fn missing() -> PaymentError {
    PaymentError::Internal("idempotency key points at no payment".into())
}

impl PaymentRepository for MemoryRepository {
    async fn find_charge(&self, key: &str) -> Result<Option<Stored>, PaymentError> {
        let missed = self
            .missed_reads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if missed.is_ok() {
            return Ok(None);
        }
        let state = self.lock();
        Ok(state.charge_keys.get(key).and_then(|k| state.stored(k)))
    }

    async fn record_charge(&self, new: NewCharge) -> Result<Recorded, PaymentError> {
        let mut state = self.lock();
        if let Some(k) = state.charge_keys.get(&new.idempotency_key) {
            return state.stored(k).map(Recorded::Existing).ok_or_else(missing);
        }
        let p = new.payment;
        state
            .charge_keys
            .insert(new.idempotency_key, (new.fingerprint, p.id.clone()));
        if p.status == PaymentStatus::Captured {
            let number = i64::try_from(state.invoices.len()).expect("few") + 1;
            state.invoices.push(Invoice {
                number,
                payment_id: p.id.clone(),
                order_id: p.order_id.clone(),
                user_id: p.user_id.clone(),
                line_items: new.invoice_lines,
                total: p.amount.clone(),
                issued_at: p.created_at,
            });
        }
        state.events.push(PaymentEvent::charged(&p));
        state.payments.push(p.clone());
        Ok(Recorded::New(p))
    }

    async fn refund(&self, new: NewRefund) -> Result<Recorded, PaymentError> {
        let mut state = self.lock();
        if let Some(k) = state.refund_keys.get(&new.idempotency_key) {
            return state.stored(k).map(Recorded::Existing).ok_or_else(missing);
        }
        let p = state
            .payments
            .iter_mut()
            .find(|p| p.id == new.payment_id)
            .ok_or(PaymentError::PaymentNotFound)?;
        check_refundable(p.status)?;
        *p = p.clone().refunded(new.now);
        let p = p.clone();
        state
            .refund_keys
            .insert(new.idempotency_key, (new.fingerprint, p.id.clone()));
        state.events.push(PaymentEvent::Refunded {
            payment: p.clone(),
            reason: new.reason,
        });
        Ok(Recorded::New(p))
    }

    async fn find(&self, id: &str) -> Result<Option<Payment>, PaymentError> {
        Ok(self.lock().payments.iter().find(|p| p.id == id).cloned())
    }

    async fn invoice(&self, payment_id: &str) -> Result<Option<Invoice>, PaymentError> {
        let state = self.lock();
        Ok(state
            .invoices
            .iter()
            .find(|i| i.payment_id == payment_id)
            .cloned())
    }

    async fn list(
        &self,
        filter: &ListFilter,
        before: Option<String>,
        limit: u64,
    ) -> Result<Vec<Payment>, PaymentError> {
        let mut rows: Vec<Payment> = (self.lock().payments.iter())
            .filter(|p| filter.user_id.as_ref().is_none_or(|u| p.user_id == *u))
            .filter(|p| filter.order_id.as_ref().is_none_or(|o| p.order_id == *o))
            .filter(|p| before.as_ref().is_none_or(|b| p.id < *b))
            .cloned()
            .collect();
        rows.sort_by(|a, b| b.id.cmp(&a.id));
        rows.truncate(usize::try_from(limit).expect("small"));
        Ok(rows)
    }
}
