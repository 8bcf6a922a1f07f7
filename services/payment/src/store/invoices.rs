//! Invoices: issued in the capturing transaction with the next gap-free number, and read
//! back with their lines.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, Set,
};

use super::{
    entities::{invoice, invoice_line},
    repository::{broken, internal, statement},
};
use crate::domain::{Invoice, LineItem, Money, Payment, PaymentError};

/// Takes the next invoice number and returns it; on PostgreSQL the row lock orders concurrent
/// captures, and a rollback gives the number back, so numbers have no gaps.
const NEXT_INVOICE: &str =
    "UPDATE invoice_counter SET last_number = last_number + 1 WHERE id = 1 RETURNING last_number";

/// Issues the invoice of a captured payment with the next gap-free number.
pub(super) async fn issue(
    txn: &DatabaseTransaction,
    p: &Payment,
    lines: Vec<LineItem>,
) -> Result<(), PaymentError> {
    let backend = txn.get_database_backend();
    let row = txn
        .query_one_raw(statement(backend, NEXT_INVOICE, []))
        .await
        .map_err(internal)?
        .ok_or_else(|| broken("the invoice counter row is missing".into()))?;
    let number: i64 = row.try_get("", "last_number").map_err(internal)?;
    invoice::Entity::insert(invoice::ActiveModel {
        payment_id: Set(p.id.clone()),
        number: Set(number),
        issued_at: Set(p.created_at),
    })
    .exec_without_returning(txn)
    .await
    .map_err(internal)?;
    let rows = (0..)
        .zip(lines)
        .map(|(line_no, l)| invoice_line::ActiveModel {
            payment_id: Set(p.id.clone()),
            line_no: Set(line_no),
            description: Set(l.description),
            quantity: Set(l.quantity),
            unit_price_minor: Set(l.unit_price.amount_minor),
        });
    invoice_line::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await
        .map_err(internal)?;
    Ok(())
}

/// The invoice of payment `p`, if it has one.
pub(super) async fn read<C: ConnectionTrait>(
    conn: &C,
    p: Payment,
) -> Result<Option<Invoice>, PaymentError> {
    let Some(row) = invoice::Entity::find_by_id(p.id.clone())
        .one(conn)
        .await
        .map_err(internal)?
    else {
        return Ok(None);
    };
    let lines = invoice_line::Entity::find()
        .filter(invoice_line::Column::PaymentId.eq(p.id.as_str()))
        .order_by_asc(invoice_line::Column::LineNo)
        .all(conn)
        .await
        .map_err(internal)?;
    let line_items = (lines.into_iter())
        .map(|l| LineItem {
            description: l.description,
            quantity: l.quantity,
            unit_price: Money {
                amount_minor: l.unit_price_minor,
                currency_code: p.amount.currency_code.clone(),
            },
        })
        .collect();
    Ok(Some(Invoice {
        number: row.number,
        payment_id: p.id,
        order_id: p.order_id,
        user_id: p.user_id,
        line_items,
        total: p.amount,
        issued_at: row.issued_at,
    }))
}
