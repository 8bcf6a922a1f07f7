//! The integration events of the payment context, as the outbox stores them:
//! `polyshop.payment.captured`, `.declined` and `.refunded` on the `POLYSHOP_PAYMENT` stream,
//! each carrying the whole payment. The store writes them in the transaction of the change.

use polyshop::payment::v1 as pb;
use polyshop_platform::{
    events::{OutgoingEvent, event},
    timestamp,
};

use crate::{domain::PaymentEvent, grpc::convert};

/// The outbox form of a domain event; it occurred at the payment's `updated_at`.
pub fn outgoing(e: &PaymentEvent) -> OutgoingEvent {
    match e {
        PaymentEvent::Captured(p) => event(&pb::PaymentCaptured {
            occur_time: Some(timestamp(p.updated_at)),
            payment: Some(convert::payment(p.clone())),
        }),
        PaymentEvent::Declined(p) => event(&pb::PaymentDeclined {
            occur_time: Some(timestamp(p.updated_at)),
            payment: Some(convert::payment(p.clone())),
        }),
        PaymentEvent::Refunded { payment, reason } => event(&pb::PaymentRefunded {
            occur_time: Some(timestamp(payment.updated_at)),
            payment: Some(convert::payment(payment.clone())),
            reason: reason.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::domain::{Money, Payment, PaymentStatus};

    fn payment(status: PaymentStatus) -> Payment {
        Payment {
            id: "p1".into(),
            order_id: "o1".into(),
            user_id: "u1".into(),
            amount: Money {
                amount_minor: 1200,
                currency_code: "USD".into(),
            },
            status,
            refunded_minor: 0,
            decline_code: String::new(),
            card_last4: "4242".into(),
            created_at: 1_000,
            updated_at: 2_000,
        }
    }

    #[test]
    fn each_event_goes_to_the_subject_its_proto_declares() {
        let cases = [
            (
                PaymentEvent::Captured(payment(PaymentStatus::Captured)),
                "polyshop.payment.captured",
            ),
            (
                PaymentEvent::Declined(payment(PaymentStatus::Declined)),
                "polyshop.payment.declined",
            ),
            (
                PaymentEvent::Refunded {
                    payment: payment(PaymentStatus::Refunded),
                    reason: "r".into(),
                },
                "polyshop.payment.refunded",
            ),
        ];
        for (e, subject) in cases {
            assert_eq!(outgoing(&e).subject, subject);
        }
    }

    #[test]
    fn a_refunded_event_carries_the_payment_and_the_reason() {
        let e = outgoing(&PaymentEvent::Refunded {
            payment: payment(PaymentStatus::Refunded),
            reason: "out of stock".into(),
        });
        let decoded = pb::PaymentRefunded::decode(e.payload.as_slice()).expect("decode");
        assert_eq!(decoded.reason, "out of stock");
        assert_eq!(decoded.payment.expect("payment").payment_id, "p1");
        assert_eq!(decoded.occur_time.expect("time").seconds, 2);
    }
}
