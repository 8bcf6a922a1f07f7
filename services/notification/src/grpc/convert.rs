//! Proto ↔ domain conversion for the notification context.

use polyshop::notification::v1 as pb;
use polyshop_platform::timestamp;

use crate::domain::{Notification, NotificationKind};

/// A notification as the contract shows it.
pub fn notification(n: Notification) -> pb::Notification {
    pb::Notification {
        read: n.is_read(),
        notification_id: n.id,
        user_id: n.user_id,
        kind: kind(n.kind) as i32,
        title: n.title,
        body: n.body,
        source_event_id: n.source_event_id,
        create_time: Some(timestamp(n.created_at)),
        read_time: n.read_at.map(timestamp),
    }
}

fn kind(k: NotificationKind) -> pb::NotificationKind {
    match k {
        NotificationKind::Welcome => pb::NotificationKind::Welcome,
        NotificationKind::OrderConfirmed => pb::NotificationKind::OrderConfirmed,
        NotificationKind::OrderRejected => pb::NotificationKind::OrderRejected,
        NotificationKind::OrderCancelled => pb::NotificationKind::OrderCancelled,
        NotificationKind::OrderShipped => pb::NotificationKind::OrderShipped,
        NotificationKind::PaymentRefunded => pb::NotificationKind::PaymentRefunded,
    }
}
