//! Use cases of the payment context, over the [`PaymentRepository`] port: charging a card,
//! refunding a payment, and reading payments and invoices with the owner rule. Access to
//! Charge and Refund (services only) is enforced by the contract before a use case runs.

mod charge;
mod read;
mod refund;

#[cfg(test)]
mod memory;

pub use charge::*;
pub use read::*;
pub use refund::*;

use std::future::Future;

use crate::domain::{Invoice, LineItem, Money, Payment, PaymentError, ProviderOutcome, TestCard};

/// A new payment to store under an idempotency key, with its invoice lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCharge {
    /// The key it is stored under.
    pub idempotency_key: String,
    /// Fingerprint of the request's parameters.
    pub fingerprint: String,
    /// The payment, CAPTURED or DECLINED.
    pub payment: Payment,
    /// What the invoice shows when the payment was captured.
    pub invoice_lines: Vec<LineItem>,
}

/// A full refund to apply under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund {
    /// The key it is stored under.
    pub idempotency_key: String,
    /// Fingerprint of the request's parameters.
    pub fingerprint: String,
    /// The payment.
    pub payment_id: String,
    /// Why, for the event.
    pub reason: String,
    /// Epoch ms.
    pub now: i64,
}

/// What an idempotency key holds: the fingerprint of the request that first used it and the
/// payment as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Fingerprint of the first request.
    pub fingerprint: String,
    /// The payment, as stored now.
    pub payment: Payment,
}

/// The outcome of a write under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Written now.
    New(Payment),
    /// The key was used before (possibly by a concurrent call); nothing was written.
    Existing(Stored),
}

impl Recorded {
    /// The payment, new or stored.
    pub fn into_payment(self) -> Payment {
        match self {
            Self::New(p) | Self::Existing(Stored { payment: p, .. }) => p,
        }
    }
}

/// One charge as the card provider is asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderCharge<'a> {
    /// The charge's idempotency key, passed on so the provider takes the money once per key.
    pub idempotency_key: &'a str,
    /// The card.
    pub card: TestCard,
    /// The amount.
    pub amount: &'a Money,
}

/// The card provider. It gets the charge's idempotency key: a charge retried after a lost
/// answer, or a duplicate that raced past the stored key, then answers the first outcome
/// instead of charging the card again.
pub trait CardProvider: Send + Sync + 'static {
    /// Charges the card; the same key with the same card and amount answers its first
    /// outcome, with another card or amount [`ProviderOutcome::KeyReused`].
    fn charge(&self, request: ProviderCharge<'_>) -> impl Future<Output = ProviderOutcome> + Send;
}

/// Which payments a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only this order's.
    pub order_id: Option<String>,
}

/// Storage of payments, invoices and idempotency keys. Each write runs in one database
/// transaction together with its outbox event, and claims its idempotency key first, so
/// concurrent calls with one key write once and the others get [`Recorded::Existing`].
pub trait PaymentRepository: Send + Sync + 'static {
    /// What the charge idempotency key `key` holds, if anything.
    fn find_charge(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Stored>, PaymentError>> + Send;

    /// Stores a charged payment with its key, its invoice (captured only, with the next
    /// gap-free number) and its PaymentCaptured / PaymentDeclined event.
    fn record_charge(
        &self,
        new: NewCharge,
    ) -> impl Future<Output = Result<Recorded, PaymentError>> + Send;

    /// Refunds a payment in full with its key and a PaymentRefunded event, as
    /// [`crate::domain::check_refundable`] allows; of two racing refunds only one applies.
    fn refund(&self, new: NewRefund)
    -> impl Future<Output = Result<Recorded, PaymentError>> + Send;

    /// The payment with `id`.
    fn find(&self, id: &str) -> impl Future<Output = Result<Option<Payment>, PaymentError>> + Send;

    /// The invoice of payment `payment_id`.
    fn invoice(
        &self,
        payment_id: &str,
    ) -> impl Future<Output = Result<Option<Invoice>, PaymentError>> + Send;

    /// Payments matching `filter` with id below `before`, newest first.
    fn list(
        &self,
        filter: &ListFilter,
        before: Option<String>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<Payment>, PaymentError>> + Send;
}
