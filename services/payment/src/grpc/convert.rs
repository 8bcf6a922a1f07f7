//! Proto ↔ domain conversion for the payment context.

use polyshop::{api::v1 as api, payment::v1 as pb};
use polyshop_platform::timestamp;

use crate::domain::{
    ChargeDraft, ChargeLine, Invoice, LineItem, Money, Payment, PaymentStatus, invoice_number,
};

fn money_in(m: api::Money) -> Money {
    Money {
        amount_minor: m.amount_minor,
        currency_code: m.currency_code,
    }
}

fn money(m: Money) -> api::Money {
    api::Money {
        amount_minor: m.amount_minor,
        currency_code: m.currency_code,
    }
}

/// A Charge request as sent; validation happens in the domain, which names fields by path.
pub fn charge_in(r: pb::ChargeRequest) -> ChargeDraft {
    ChargeDraft {
        idempotency_key: r.idempotency_key,
        order_id: r.order_id,
        user_id: r.user_id,
        amount: r.amount.map(money_in),
        payment_method_token: r.payment_method_token,
        line_items: (r.line_items.into_iter())
            .map(|l| ChargeLine {
                description: l.description,
                quantity: l.quantity,
                unit_price: l.unit_price.map(money_in),
            })
            .collect(),
    }
}

fn status(s: PaymentStatus) -> pb::PaymentStatus {
    match s {
        PaymentStatus::Captured => pb::PaymentStatus::Captured,
        PaymentStatus::Declined => pb::PaymentStatus::Declined,
        PaymentStatus::Refunded => pb::PaymentStatus::Refunded,
    }
}

/// The proto form of a payment.
pub fn payment(p: Payment) -> pb::Payment {
    pb::Payment {
        refunded_amount: Some(money(p.refunded_amount())),
        payment_id: p.id,
        order_id: p.order_id,
        user_id: p.user_id,
        amount: Some(money(p.amount)),
        status: status(p.status) as i32,
        decline_code: p.decline_code,
        card_last4: p.card_last4,
        create_time: Some(timestamp(p.created_at)),
        update_time: Some(timestamp(p.updated_at)),
    }
}

fn line(l: LineItem) -> pb::LineItem {
    pb::LineItem {
        description: l.description,
        quantity: l.quantity,
        unit_price: Some(money(l.unit_price)),
    }
}

/// The proto form of an invoice.
pub fn invoice(i: Invoice) -> pb::Invoice {
    pb::Invoice {
        invoice_number: invoice_number(i.number),
        payment_id: i.payment_id,
        order_id: i.order_id,
        user_id: i.user_id,
        line_items: i.line_items.into_iter().map(line).collect(),
        total: Some(money(i.total)),
        issue_time: Some(timestamp(i.issued_at)),
    }
}
