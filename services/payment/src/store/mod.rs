//! Persistence of the payment context with sea-orm: payments, invoices with their lines, the
//! invoice counter, and the idempotency keys of charges and refunds; their migrations; and
//! [`SeaPaymentRepository`], the implementation of [`crate::app::PaymentRepository`].
//! Entities never leave this module.

mod entities;
mod invoices;
mod repository;

pub use repository::SeaPaymentRepository;

use polyshop_platform::db::Migration;

/// Schema of the payment database, oldest first. The CHECK on `payments` is the last line of
/// defence of "never refund more than was captured". `invoice_counter` holds one row whose
/// number is taken with an `UPDATE` in the capturing transaction, so numbers are gap-free:
/// a rolled-back capture gives its number back.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "payments, invoices and idempotency keys",
        sql: "CREATE TABLE payments (
            id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            amount_minor BIGINT NOT NULL,
            currency_code TEXT NOT NULL,
            status TEXT NOT NULL,
            refunded_minor BIGINT NOT NULL,
            decline_code TEXT NOT NULL,
            card_last4 TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            CONSTRAINT payments_amount_positive CHECK (amount_minor > 0),
            CONSTRAINT payments_refund_within_amount
              CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor));
          CREATE INDEX payments_by_user ON payments (user_id, id);
          CREATE INDEX payments_by_order ON payments (order_id, id);
          CREATE TABLE invoices (
            payment_id TEXT PRIMARY KEY REFERENCES payments (id),
            number BIGINT NOT NULL UNIQUE,
            issued_at BIGINT NOT NULL);
          CREATE TABLE invoice_lines (
            payment_id TEXT NOT NULL REFERENCES invoices (payment_id) ON DELETE CASCADE,
            line_no INTEGER NOT NULL,
            description TEXT NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            unit_price_minor BIGINT NOT NULL,
            PRIMARY KEY (payment_id, line_no));
          CREATE TABLE invoice_counter (
            id INTEGER PRIMARY KEY,
            last_number BIGINT NOT NULL);
          INSERT INTO invoice_counter (id, last_number) VALUES (1, 0);
          CREATE TABLE charge_keys (
            idempotency_key TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            payment_id TEXT NOT NULL,
            created_at BIGINT NOT NULL);
          CREATE TABLE refund_keys (
            idempotency_key TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            payment_id TEXT NOT NULL,
            created_at BIGINT NOT NULL)",
    },
    Migration {
        version: 2,
        name: "idempotency keys by age, for the retention pruner",
        sql: "CREATE INDEX charge_keys_by_age ON charge_keys (created_at);
          CREATE INDEX refund_keys_by_age ON refund_keys (created_at)",
    },
];
