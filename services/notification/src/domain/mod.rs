//! The notification context's model and rules: what a notification is, which kinds exist,
//! how its id is derived from the event that caused it, who may be mailed, what each
//! notification says, how money reads in it, and how outgoing mail is retried. Pure: no I/O.

mod ids;
mod messages;
mod money;
mod outgoing;

pub use ids::*;
pub use messages::*;
pub use money::*;
pub use outgoing::*;

use polyshop_platform::status::Violations;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    /// Welcome after registration.
    Welcome,
    /// An order was confirmed.
    OrderConfirmed,
    /// An order was rejected.
    OrderRejected,
    /// An order was cancelled.
    OrderCancelled,
    /// An order was shipped.
    OrderShipped,
    /// A payment was refunded.
    PaymentRefunded,
}

impl NotificationKind {
    /// Every kind, in contract order.
    pub const ALL: [Self; 6] = [
        Self::Welcome,
        Self::OrderConfirmed,
        Self::OrderRejected,
        Self::OrderCancelled,
        Self::OrderShipped,
        Self::PaymentRefunded,
    ];

    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::OrderConfirmed => "order_confirmed",
            Self::OrderRejected => "order_rejected",
            Self::OrderCancelled => "order_cancelled",
            Self::OrderShipped => "order_shipped",
            Self::PaymentRefunded => "payment_refunded",
        }
    }

    /// From the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A message to one user, created from one domain event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// UUIDv7, derived from the source event and the user (see [`notification_id`]).
    pub id: String,
    /// The recipient.
    pub user_id: String,
    /// What it is about.
    pub kind: NotificationKind,
    /// Subject line.
    pub title: String,
    /// Text.
    pub body: String,
    /// Id of the event it was created from; unique together with `user_id`.
    pub source_event_id: String,
    /// Epoch ms; the timestamp inside `id`.
    pub created_at: i64,
    /// Epoch ms of the first MarkNotificationRead; `None` while unread.
    pub read_at: Option<i64>,
}

impl Notification {
    /// Whether the owner has read it.
    pub fn is_read(&self) -> bool {
        self.read_at.is_some()
    }
}

/// Where a user's mail goes, as last heard from the user context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The user.
    pub user_id: String,
    /// Their email address.
    pub email: String,
    /// The name they go by.
    pub display_name: String,
    /// Epoch ms of the user's last change: an older update never overwrites a newer one.
    pub updated_at: i64,
}

/// One outgoing mail: a notification addressed to its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The notification; also the mail's idempotency key, and its Message-ID is made from it
    /// ([`Mail::message_id`]).
    pub notification_id: String,
    /// The recipient's user id.
    pub user_id: String,
    /// The recipient's address.
    pub to_email: String,
    /// The recipient's display name (may be empty).
    pub to_name: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

impl Mail {
    /// `notification` addressed to `recipient`.
    pub fn new(notification: &Notification, recipient: &Recipient) -> Self {
        Self {
            notification_id: notification.id.clone(),
            user_id: notification.user_id.clone(),
            to_email: recipient.email.clone(),
            to_name: recipient.display_name.clone(),
            subject: notification.title.clone(),
            body: notification.body.clone(),
        }
    }

    /// The `Message-ID` header value, `<notification id@polyshop.local>`: a function of the
    /// notification id, itself a function of (event, user), so every attempt at the same mail
    /// carries the same Message-ID and the outbox, the mailbox file and receivers can tell a
    /// repeat from a new mail.
    pub fn message_id(&self) -> String {
        message_id(&self.notification_id)
    }

    /// The recipient as `"Name" <address>`, or the bare address when there is no usable
    /// name. Quotes, backslashes and control characters are dropped from the name.
    pub fn to(&self) -> String {
        let name: String = self
            .to_name
            .chars()
            .filter(|c| !c.is_control() && !matches!(c, '"' | '\\'))
            .collect();
        match name.trim() {
            "" => self.to_email.clone(),
            name => format!("\"{name}\" <{}>", self.to_email),
        }
    }
}

/// What can go wrong in the notification context. Mapped to gRPC in `grpc::status` and to
/// consumer outcomes (poison or retry) in `events`.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// The request or event breaks field rules.
    #[error("invalid: {0}")]
    Invalid(Violations),
    /// The caller is not a user (a service token): notifications belong to users.
    #[error("notifications belong to users; call with a user's token")]
    UserRequired,
    /// No such notification for this caller (someone else's looks the same).
    #[error("notification not found")]
    NotFound,
    /// The sender could not hand the mail over; the mail dispatcher tries again later.
    #[error("delivery failed: {0}")]
    Delivery(String),
    /// Storage failed.
    #[error("internal: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<Violations> for NotificationError {
    fn from(v: Violations) -> Self {
        Self::Invalid(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_stored_form() {
        for kind in NotificationKind::ALL {
            assert_eq!(NotificationKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(NotificationKind::parse("shouting"), None);
    }

    #[test]
    fn a_mail_is_addressed_with_a_sanitised_name_or_the_bare_address() {
        let mut mail = Mail {
            notification_id: "n1".into(),
            user_id: "u1".into(),
            to_email: "ada@example.com".into(),
            to_name: "Ada \"L\"\r\nBcc: x".into(),
            subject: "s".into(),
            body: "b".into(),
        };
        assert_eq!(mail.to(), "\"Ada LBcc: x\" <ada@example.com>");
        mail.to_name = "  ".into();
        assert_eq!(mail.to(), "ada@example.com");
        assert_eq!(mail.message_id(), "<n1@polyshop.local>");
    }
}
