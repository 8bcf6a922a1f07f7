//! [`SeaPaymentRepository`]: the payment repository over sea-orm (SQLite or PostgreSQL).
//!
//! Every write claims its idempotency key first with `INSERT … ON CONFLICT DO NOTHING`:
//! on PostgreSQL a concurrent insert of the same key waits for the first transaction and then
//! inserts nothing, after which (READ COMMITTED) the winner's row is visible; SQLite runs on
//! one pooled connection, so transactions are serialised. Either way one call writes and the
//! others read its result. State changes are conditional `UPDATE`s checked by rows affected,
//! and each commits with its outbox event.

use std::sync::Arc;

use futures::future::BoxFuture;
use polyshop_platform::{
    db::group::{GroupCommit, Grouped},
    events::outbox::{self, OutboxSignal},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement, TransactionTrait, Value,
};

use super::{entities::payment, invoices};
use crate::{
    app::{ListFilter, NewCharge, NewRefund, PaymentRepository, Recorded, Stored},
    domain::{
        Invoice, Money, Payment, PaymentError, PaymentEvent, PaymentStatus, check_refundable,
    },
    events,
};

const CLAIM_CHARGE: &str = "INSERT INTO charge_keys (idempotency_key, fingerprint, payment_id,
    created_at) VALUES (?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING";
const CLAIM_REFUND: &str = "INSERT INTO refund_keys (idempotency_key, fingerprint, payment_id,
    created_at) VALUES (?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING";
const CHARGE_KEY: &str =
    "SELECT fingerprint, payment_id FROM charge_keys WHERE idempotency_key = ?";
const REFUND_KEY: &str =
    "SELECT fingerprint, payment_id FROM refund_keys WHERE idempotency_key = ?";
/// Refunds in full only what is still captured; 0 rows affected means a racing refund won.
const REFUND: &str = "UPDATE payments SET status = 'refunded', refunded_minor = amount_minor,
    updated_at = ? WHERE id = ? AND status = 'captured'";

/// The payment repository over a sea-orm connection.
#[derive(Debug, Clone)]
pub struct SeaPaymentRepository {
    db: DatabaseConnection,
    signal: OutboxSignal,
    /// New charges (one per order), committed in groups.
    charges: GroupCommit<Charges>,
}

impl SeaPaymentRepository {
    /// A repository over `db` (already migrated) that wakes the outbox relay through `signal`
    /// after committing events. Starts the task that commits charges, so it must be called
    /// inside a Tokio runtime.
    pub fn new(db: DatabaseConnection, signal: OutboxSignal) -> Self {
        let charges = Charges {
            db: db.clone(),
            signal: signal.clone(),
        };
        Self {
            charges: GroupCommit::start(db.clone(), Arc::new(charges)),
            db,
            signal,
        }
    }
}

/// Records charges for [`GroupCommit`].
struct Charges {
    db: DatabaseConnection,
    signal: OutboxSignal,
}

impl Grouped for Charges {
    type Write = NewCharge;
    type Output = Recorded;
    type Error = PaymentError;
    type Deferred = ();

    fn apply<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        new: &'a NewCharge,
        (): &'a mut (),
    ) -> BoxFuture<'a, Result<Recorded, PaymentError>> {
        Box::pin(record_charge_in(txn, new))
    }

    fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    fn db_error(e: DbErr) -> PaymentError {
        internal(e)
    }

    fn committed(&self) {
        self.signal.wake();
    }

    fn stopped() -> PaymentError {
        broken("the payment's charge queue has stopped".into())
    }
}

/// Stores `new` in `txn` with its key, invoice and event, or finds the key's stored result.
async fn record_charge_in(
    txn: &DatabaseTransaction,
    new: &NewCharge,
) -> Result<Recorded, PaymentError> {
    let p = &new.payment;
    let claim = [
        new.idempotency_key.as_str().into(),
        new.fingerprint.as_str().into(),
        p.id.as_str().into(),
        p.created_at.into(),
    ];
    if exec(txn, CLAIM_CHARGE, claim).await? == 0 {
        let key = &new.idempotency_key;
        let found = stored(txn, CHARGE_KEY, key)
            .await?
            .ok_or_else(|| broken(format!("key {key} is claimed but cannot be read")))?;
        return Ok(Recorded::Existing(found));
    }
    payment::Entity::insert(payment_row(p))
        .exec_without_returning(txn)
        .await
        .map_err(internal)?;
    if p.status == PaymentStatus::Captured {
        invoices::issue(txn, p, new.invoice_lines.clone()).await?;
    }
    outbox::enqueue(txn, &events::outgoing(&PaymentEvent::charged(p)))
        .await
        .map_err(internal)?;
    Ok(Recorded::New(p.clone()))
}

pub(super) fn internal(e: DbErr) -> PaymentError {
    PaymentError::Internal(Box::new(e))
}

pub(super) fn broken(what: String) -> PaymentError {
    PaymentError::Internal(what.into())
}

pub(super) fn statement(
    backend: DbBackend,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Statement {
    Statement::from_sql_and_values(
        backend,
        polyshop_platform::db::placeholders(backend, sql),
        values,
    )
}

/// Runs `sql` (with `?` placeholders) and returns the rows affected.
pub(super) async fn exec(
    txn: &DatabaseTransaction,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Result<u64, PaymentError> {
    let statement = statement(txn.get_database_backend(), sql, values);
    let result = txn.execute_raw(statement).await.map_err(internal)?;
    Ok(result.rows_affected())
}

/// Rolls back and returns `err`.
async fn abandon<T>(txn: DatabaseTransaction, err: PaymentError) -> Result<T, PaymentError> {
    txn.rollback().await.map_err(internal)?;
    Err(err)
}

fn to_payment(row: payment::Model) -> Result<Payment, PaymentError> {
    let status = PaymentStatus::parse(&row.status)
        .ok_or_else(|| broken(format!("payment {} has status {:?}", row.id, row.status)))?;
    Ok(Payment {
        id: row.id,
        order_id: row.order_id,
        user_id: row.user_id,
        amount: Money {
            amount_minor: row.amount_minor,
            currency_code: row.currency_code,
        },
        status,
        refunded_minor: row.refunded_minor,
        decline_code: row.decline_code,
        card_last4: row.card_last4,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

async fn load<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Payment>, PaymentError> {
    let row = payment::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await
        .map_err(internal)?;
    row.map(to_payment).transpose()
}

/// What key `key` holds, read with `sql` (`CHARGE_KEY` or `REFUND_KEY`).
async fn stored<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    key: &str,
) -> Result<Option<Stored>, PaymentError> {
    let row = conn
        .query_one_raw(statement(conn.get_database_backend(), sql, [key.into()]))
        .await
        .map_err(internal)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let fingerprint: String = row.try_get("", "fingerprint").map_err(internal)?;
    let payment_id: String = row.try_get("", "payment_id").map_err(internal)?;
    let payment = load(conn, &payment_id)
        .await?
        .ok_or_else(|| broken(format!("idempotency key {key} points at no payment")))?;
    Ok(Some(Stored {
        fingerprint,
        payment,
    }))
}

/// After a claim found the key taken: the winner's result, committed.
async fn existing(
    txn: DatabaseTransaction,
    sql: &str,
    key: &str,
) -> Result<Recorded, PaymentError> {
    let Some(found) = stored(&txn, sql, key).await? else {
        return abandon(
            txn,
            broken(format!("key {key} is claimed but cannot be read")),
        )
        .await;
    };
    txn.commit().await.map_err(internal)?;
    Ok(Recorded::Existing(found))
}

fn payment_row(p: &Payment) -> payment::ActiveModel {
    payment::ActiveModel {
        id: Set(p.id.clone()),
        order_id: Set(p.order_id.clone()),
        user_id: Set(p.user_id.clone()),
        amount_minor: Set(p.amount.amount_minor),
        currency_code: Set(p.amount.currency_code.clone()),
        status: Set(p.status.as_str().to_owned()),
        refunded_minor: Set(p.refunded_minor),
        decline_code: Set(p.decline_code.clone()),
        card_last4: Set(p.card_last4.clone()),
        created_at: Set(p.created_at),
        updated_at: Set(p.updated_at),
    }
}

impl SeaPaymentRepository {
    /// Writes `event` to the outbox in `txn`, commits, and wakes the relay.
    async fn commit_with(
        &self,
        txn: DatabaseTransaction,
        event: &PaymentEvent,
    ) -> Result<(), PaymentError> {
        outbox::enqueue(&txn, &events::outgoing(event))
            .await
            .map_err(internal)?;
        txn.commit().await.map_err(internal)?;
        self.signal.wake();
        Ok(())
    }
}

impl PaymentRepository for SeaPaymentRepository {
    async fn find_charge(&self, key: &str) -> Result<Option<Stored>, PaymentError> {
        stored(&self.db, CHARGE_KEY, key).await
    }

    async fn record_charge(&self, new: NewCharge) -> Result<Recorded, PaymentError> {
        self.charges.submit(new).await
    }

    async fn refund(&self, new: NewRefund) -> Result<Recorded, PaymentError> {
        let txn = self.db.begin().await.map_err(internal)?;
        let claim = [
            new.idempotency_key.as_str().into(),
            new.fingerprint.into(),
            new.payment_id.as_str().into(),
            new.now.into(),
        ];
        if exec(&txn, CLAIM_REFUND, claim).await? == 0 {
            return existing(txn, REFUND_KEY, &new.idempotency_key).await;
        }
        let Some(current) = load(&txn, &new.payment_id).await? else {
            return abandon(txn, PaymentError::PaymentNotFound).await;
        };
        if let Err(e) = check_refundable(current.status) {
            return abandon(txn, e).await;
        }
        let refunded = current.refunded(new.now);
        let values = [refunded.updated_at.into(), new.payment_id.as_str().into()];
        if exec(&txn, REFUND, values).await? == 0 {
            // A racing refund under another key won after we read the payment.
            txn.rollback().await.map_err(internal)?;
            let latest = load(&self.db, &new.payment_id).await?;
            let status = latest.map_or(PaymentStatus::Captured, |p| p.status);
            check_refundable(status)?;
            return Err(broken(format!(
                "payment {} is captured but cannot be refunded",
                new.payment_id
            )));
        }
        let event = PaymentEvent::Refunded {
            payment: refunded.clone(),
            reason: new.reason,
        };
        self.commit_with(txn, &event).await?;
        Ok(Recorded::New(refunded))
    }

    async fn find(&self, id: &str) -> Result<Option<Payment>, PaymentError> {
        load(&self.db, id).await
    }

    async fn invoice(&self, payment_id: &str) -> Result<Option<Invoice>, PaymentError> {
        let Some(p) = load(&self.db, payment_id).await? else {
            return Ok(None);
        };
        invoices::read(&self.db, p).await
    }

    async fn list(
        &self,
        filter: &ListFilter,
        before: Option<String>,
        limit: u64,
    ) -> Result<Vec<Payment>, PaymentError> {
        let mut query = payment::Entity::find();
        if let Some(user_id) = &filter.user_id {
            query = query.filter(payment::Column::UserId.eq(user_id.as_str()));
        }
        if let Some(order_id) = &filter.order_id {
            query = query.filter(payment::Column::OrderId.eq(order_id.as_str()));
        }
        if let Some(before) = before {
            query = query.filter(payment::Column::Id.lt(before));
        }
        let rows = query
            .order_by_desc(payment::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        rows.into_iter().map(to_payment).collect()
    }
}
