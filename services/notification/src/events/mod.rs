//! The notification context's event side: three durable consumers (user, order and payment
//! streams) feeding one [`NotificationHandler`], which calls the use cases inside the
//! consumer's transaction, and `NotificationSent`, published through the outbox
//! ([`notification_sent`]): by the handler for an in-app-only notification, by the mail
//! outbox once the mail was handed over.

mod handler;

pub use handler::NotificationHandler;

use std::sync::Arc;

use polyshop::notification::v1::NotificationSent;
use polyshop_platform::{
    config::EventSettings,
    events::{self, EventBus, OutgoingEvent, consumer::ConsumerSpec, outbox::OutboxSignal},
    flags::Flags,
    shutdown::Shutdown,
};
use sea_orm::DatabaseConnection;

use crate::{domain::Notification, grpc::convert};

/// `user.registered`: recipient + welcome notification.
pub const USER_REGISTERED: &str = "polyshop.user.registered";
/// `user.updated`: recipient refreshed.
pub const USER_UPDATED: &str = "polyshop.user.updated";
/// `user.deleted`: recipient forgotten.
pub const USER_DELETED: &str = "polyshop.user.deleted";
/// `order.confirmed`.
pub const ORDER_CONFIRMED: &str = "polyshop.order.confirmed";
/// `order.rejected`.
pub const ORDER_REJECTED: &str = "polyshop.order.rejected";
/// `order.cancelled`.
pub const ORDER_CANCELLED: &str = "polyshop.order.cancelled";
/// `order.shipped`.
pub const ORDER_SHIPPED: &str = "polyshop.order.shipped";
/// `payment.refunded`.
pub const PAYMENT_REFUNDED: &str = "polyshop.payment.refunded";

/// The durable consumers: one per stream, each filtered to the subjects handled here.
pub fn consumer_specs(settings: &EventSettings) -> [ConsumerSpec; 3] {
    [
        settings.consumer(
            "notification-user-events",
            "POLYSHOP_USER",
            &[USER_REGISTERED, USER_UPDATED, USER_DELETED],
        ),
        settings.consumer(
            "notification-order-events",
            "POLYSHOP_ORDER",
            &[
                ORDER_CONFIRMED,
                ORDER_REJECTED,
                ORDER_CANCELLED,
                ORDER_SHIPPED,
            ],
        ),
        settings.consumer(
            "notification-payment-events",
            "POLYSHOP_PAYMENT",
            &[PAYMENT_REFUNDED],
        ),
    ]
}

/// `NotificationSent` for `notification`, delivered through `channel` at `at` (epoch ms), in
/// its outbox form.
pub fn notification_sent(notification: &Notification, channel: &str, at: i64) -> OutgoingEvent {
    events::event(&NotificationSent {
        notification: Some(convert::notification(notification.clone())),
        channel: channel.to_owned(),
        occur_time: Some(polyshop_platform::timestamp(at)),
    })
}

/// Runs the consumers in the background until `shutdown`; they record mail and wake the mail
/// dispatcher through `mail`.
pub fn spawn_consumers(
    bus: &EventBus,
    db: &DatabaseConnection,
    settings: &EventSettings,
    mail: OutboxSignal,
    flags: Flags,
    shutdown: &Shutdown,
) {
    let handler = Arc::new(NotificationHandler::new(bus.signal.clone(), mail, flags));
    for spec in consumer_specs(settings) {
        bus.spawn_consumer(db.clone(), spec, handler.clone(), shutdown.clone());
    }
}

#[cfg(test)]
mod tests {
    use polyshop::{order::v1 as order, payment::v1 as payment, user::v1 as user};
    use polyshop_platform::events::subject_of;

    use super::*;

    #[test]
    fn consumed_subjects_match_the_subjects_the_contracts_declare() {
        let declared = [
            (USER_REGISTERED, subject_of::<user::UserRegistered>()),
            (USER_UPDATED, subject_of::<user::UserUpdated>()),
            (USER_DELETED, subject_of::<user::UserDeleted>()),
            (ORDER_CONFIRMED, subject_of::<order::OrderConfirmed>()),
            (ORDER_REJECTED, subject_of::<order::OrderRejected>()),
            (ORDER_CANCELLED, subject_of::<order::OrderCancelled>()),
            (ORDER_SHIPPED, subject_of::<order::OrderShipped>()),
            (PAYMENT_REFUNDED, subject_of::<payment::PaymentRefunded>()),
        ];
        for (ours, theirs) in declared {
            assert_eq!(Some(ours.to_owned()), theirs);
        }
    }

    #[test]
    fn each_consumer_reads_its_contexts_stream() {
        let specs = consumer_specs(&EventSettings::default());
        for spec in specs {
            let context = spec.stream.trim_start_matches("POLYSHOP_").to_lowercase();
            assert!(spec.name.starts_with("notification-"), "{}", spec.name);
            for subject in &spec.filter_subjects {
                assert!(
                    subject.starts_with(&format!("polyshop.{context}.")),
                    "{subject}"
                );
            }
        }
    }
}
