//! [`NotificationHandler`]: decodes one consumed event and applies it through the use cases
//! inside the consumer's transaction: the notification, and its mail as a pending mail outbox
//! row. No mail is sent from here: the transaction may yet be rolled back and the event
//! replayed (a batch with a failing event is applied again one event at a time), so the
//! [`MailDispatcher`](crate::app::MailDispatcher) sends it after the commit.
//!
//! `NotificationSent` says a notification reached its user through a channel. An in-app-only
//! one has reached them once committed, so it is enqueued here, in this transaction; a mailed
//! one has reached them when the mail was handed over, so the mail outbox enqueues it then,
//! with the sender's channel (see `store::SeaMailOutbox`).
//!
//! An event that cannot be decoded or names no usable user is poison (dead-lettered at
//! once); storage trouble is retried, then dead-lettered after MaxDeliver.

use futures::future::BoxFuture;
use polyshop::{order::v1 as order, payment::v1 as payment, user::v1 as user};
use polyshop_platform::{
    events::{
        ReceivedEvent,
        consumer::{Handler, HandlerError},
        outbox::{self, OutboxSignal},
    },
    flags::Flags,
    status::Violations,
};
use sea_orm::DatabaseTransaction;

use super::{
    ORDER_CANCELLED, ORDER_CONFIRMED, ORDER_REJECTED, ORDER_SHIPPED, PAYMENT_REFUNDED,
    USER_DELETED, USER_REGISTERED, USER_UPDATED, notification_sent,
};
use crate::{
    app::{self, IN_APP, Notified},
    domain::{Money, NotificationError, Recipient, RejectionReason, Trigger},
    store::TxnEventStore,
};

/// Applies user, order and payment events; records mail for the mail dispatcher.
#[derive(Debug)]
pub struct NotificationHandler {
    relay: OutboxSignal,
    mail: OutboxSignal,
    flags: Flags,
}

impl NotificationHandler {
    /// A handler waking the event relay through `relay` and the mail dispatcher through `mail`.
    pub fn new(relay: OutboxSignal, mail: OutboxSignal, flags: Flags) -> Self {
        Self { relay, mail, flags }
    }

    async fn apply(
        &self,
        store: &TxnEventStore<'_>,
        event: &ReceivedEvent,
    ) -> Result<Option<Notified>, NotificationError> {
        let id = event.id.as_str();
        let (user_id, trigger) = match event.subject.as_str() {
            USER_REGISTERED => {
                let user = decode::<user::UserRegistered>(event)?
                    .user
                    .ok_or_else(no_user)?;
                app::remember_recipient(store, &recipient(&user)).await?;
                let trigger = Trigger::Welcome {
                    display_name: user.display_name,
                };
                (user.user_id, trigger)
            }
            USER_UPDATED => {
                let user = decode::<user::UserUpdated>(event)?
                    .user
                    .ok_or_else(no_user)?;
                app::remember_recipient(store, &recipient(&user)).await?;
                return Ok(None);
            }
            USER_DELETED => {
                let e = decode::<user::UserDeleted>(event)?;
                app::forget_recipient(store, &e.user_id).await?;
                return Ok(None);
            }
            ORDER_CONFIRMED => {
                let e = decode::<order::OrderConfirmed>(event)?;
                let trigger = Trigger::OrderConfirmed {
                    order_id: e.order_id,
                };
                (e.user_id, trigger)
            }
            ORDER_REJECTED => {
                let e = decode::<order::OrderRejected>(event)?;
                let trigger = Trigger::OrderRejected {
                    order_id: e.order_id,
                    reason: rejection_reason(e.reason),
                    detail: e.detail,
                };
                (e.user_id, trigger)
            }
            ORDER_CANCELLED => {
                let e = decode::<order::OrderCancelled>(event)?;
                let trigger = Trigger::OrderCancelled {
                    order_id: e.order_id,
                    reason: e.reason,
                };
                (e.user_id, trigger)
            }
            ORDER_SHIPPED => {
                let e = decode::<order::OrderShipped>(event)?;
                let trigger = Trigger::OrderShipped {
                    order_id: e.order_id,
                    tracking_number: e.tracking_number,
                };
                (e.user_id, trigger)
            }
            PAYMENT_REFUNDED => refund(decode::<payment::PaymentRefunded>(event)?)?,
            other => {
                return Err(invalid(
                    "subject",
                    format!("{other:?} is not consumed here"),
                ));
            }
        };
        let mail = self.flags.enabled("notification_email");
        app::notify(store, mail, id, &user_id, &trigger).await
    }
}

impl Handler for NotificationHandler {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a ReceivedEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let store = TxnEventStore::new(txn);
            let Some(notified) = self.apply(&store, event).await.map_err(outcome)? else {
                return Ok(());
            };
            let n = &notified.notification;
            tracing::info!(
                event_id = %event.id,
                notification_id = %n.id,
                user_id = %n.user_id,
                kind = n.kind.as_str(),
                mailed = notified.mailed,
                "notification stored"
            );
            // Both wake-ups come before the commit, which the handler cannot see: on SQLite
            // (one connection) the woken task reads after it anyway, on PostgreSQL it finds
            // the rows on its next poll at the latest.
            if notified.mailed {
                self.mail.wake();
                return Ok(());
            }
            let sent = notification_sent(n, IN_APP, polyshop_platform::now_millis());
            outbox::enqueue(txn, &sent)
                .await
                .map_err(|e| HandlerError::Retry(format!("outbox: {e}")))?;
            self.relay.wake();
            Ok(())
        })
    }
}

/// Poison for what can never succeed, retry for everything else.
fn outcome(err: NotificationError) -> HandlerError {
    match err {
        NotificationError::Invalid(v) => HandlerError::Poison(format!("invalid event: {v}")),
        other => HandlerError::Retry(other.to_string()),
    }
}

fn invalid(field: &str, description: String) -> NotificationError {
    let mut v = Violations::new();
    v.add(field, description);
    NotificationError::Invalid(v)
}

fn no_user() -> NotificationError {
    invalid("user", "is required".into())
}

/// The payload as `E`, checking the type header when there is one: proto3 decoding alone
/// would accept many a wrong message.
fn decode<E: prost::Message + prost::Name + Default>(
    event: &ReceivedEvent,
) -> Result<E, NotificationError> {
    if !event.type_name.is_empty() && event.type_name != E::full_name() {
        return Err(invalid(
            "type",
            format!("{} is not {}", event.type_name, E::full_name()),
        ));
    }
    event
        .decode::<E>()
        .map_err(|e| invalid("payload", format!("is not a {}: {e}", E::full_name())))
}

fn recipient(user: &user::User) -> Recipient {
    let time = user.update_time.or(user.create_time).unwrap_or_default();
    Recipient {
        user_id: user.user_id.clone(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        updated_at: time.seconds.saturating_mul(1000) + i64::from(time.nanos / 1_000_000),
    }
}

fn rejection_reason(value: i32) -> RejectionReason {
    use order::RejectionReason as R;
    match R::try_from(value).unwrap_or(R::Unspecified) {
        R::Unspecified => RejectionReason::Unspecified,
        R::UserNotFound => RejectionReason::UserNotFound,
        R::UserInactive => RejectionReason::UserInactive,
        R::ProductNotFound => RejectionReason::ProductNotFound,
        R::CurrencyMismatch => RejectionReason::CurrencyMismatch,
        R::InsufficientStock => RejectionReason::InsufficientStock,
        R::PaymentDeclined => RejectionReason::PaymentDeclined,
        R::ServiceUnavailable => RejectionReason::ServiceUnavailable,
    }
}

/// The payer and what they got back: the refunded amount, else the charged amount (a refund
/// is always in full).
fn refund(e: payment::PaymentRefunded) -> Result<(String, Trigger), NotificationError> {
    let p = e
        .payment
        .ok_or_else(|| invalid("payment", "is required".into()))?;
    let amount = p
        .refunded_amount
        .filter(|m| m.amount_minor != 0)
        .or(p.amount)
        .ok_or_else(|| invalid("payment.amount", "is required".into()))?;
    let trigger = Trigger::PaymentRefunded {
        order_id: p.order_id,
        amount: Money {
            amount_minor: amount.amount_minor,
            currency_code: amount.currency_code,
        },
        reason: e.reason,
    };
    Ok((p.user_id, trigger))
}

#[cfg(test)]
mod tests {
    use prost::{Message, Name};

    use super::*;

    fn received<E: Message + Name>(event: &E) -> ReceivedEvent {
        ReceivedEvent {
            id: "e1".into(),
            subject: "polyshop.order.confirmed".into(),
            type_name: E::full_name(),
            payload: event.encode_to_vec().into(),
            delivered: 1,
        }
    }

    #[test]
    fn an_undecodable_payload_is_poison() {
        let mut event = received(&order::OrderConfirmed::default());
        event.payload = vec![0xff, 0xff, 0xff].into();
        let err = decode::<order::OrderConfirmed>(&event).expect_err("garbage");
        assert!(matches!(outcome(err), HandlerError::Poison(_)));
    }

    #[test]
    fn a_payload_of_another_type_is_poison() {
        let event = received(&order::OrderShipped::default());
        let err = decode::<order::OrderConfirmed>(&event).expect_err("wrong type");
        assert!(matches!(outcome(err), HandlerError::Poison(_)));
    }

    #[test]
    fn storage_failures_are_retried() {
        let storage = NotificationError::Internal("disk full".into());
        assert!(matches!(outcome(storage), HandlerError::Retry(_)));
    }

    #[test]
    fn a_refund_names_the_payer_and_the_refunded_amount() {
        let (user_id, trigger) = refund(payment::PaymentRefunded {
            payment: Some(payment::Payment {
                user_id: "u1".into(),
                order_id: "o1".into(),
                amount: Some(polyshop::api::v1::Money {
                    amount_minor: 999,
                    currency_code: "EUR".into(),
                }),
                ..Default::default()
            }),
            reason: String::new(),
            occur_time: None,
        })
        .expect("valid");
        assert_eq!(user_id, "u1");
        let Trigger::PaymentRefunded { amount, .. } = trigger else {
            panic!("not a refund: {trigger:?}");
        };
        assert_eq!(amount.amount_minor, 999, "falls back to the charged amount");
        let missing = refund(payment::PaymentRefunded::default()).expect_err("no payment");
        assert!(matches!(outcome(missing), HandlerError::Poison(_)));
    }
}
