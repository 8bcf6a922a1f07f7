//! Consuming domain events: keep the recipient directory current, and turn an event into one
//! stored notification per user, handed to the [`Sender`] when the user's address is known.

use polyshop_platform::status::Violations;

use super::{EventStore, Sender};
use crate::domain::{
    Mail, Notification, NotificationError, Recipient, Trigger, check_user_id, is_mailable,
    notification_id,
};

/// The channel reported when no mail went out (no usable address on file).
pub const IN_APP: &str = "in_app";

/// A notification that was stored by this call, and how it was delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The stored notification.
    pub notification: Notification,
    /// The sender's channel, or [`IN_APP`].
    pub channel: &'static str,
}

fn checked_user_id(user_id: &str) -> Result<(), NotificationError> {
    let mut v = Violations::new();
    v.check("user_id", check_user_id(user_id));
    Ok(v.into_result()?)
}

/// Remembers where `recipient`'s mail goes (`user.registered`, `user.updated`).
///
/// # Errors
/// `Invalid` for an unusable user id, `Internal`.
pub async fn remember_recipient<S: EventStore>(
    store: &S,
    recipient: &Recipient,
) -> Result<(), NotificationError> {
    checked_user_id(&recipient.user_id)?;
    store.upsert_recipient(recipient).await
}

/// Forgets a deleted user's address (`user.deleted`); their notifications stay readable for
/// audit, though nobody can sign in as them any more.
///
/// # Errors
/// `Invalid` for an unusable user id, `Internal`.
pub async fn forget_recipient<S: EventStore>(
    store: &S,
    user_id: &str,
) -> Result<(), NotificationError> {
    checked_user_id(user_id)?;
    store.remove_recipient(user_id).await
}

/// Stores the notification `trigger` (from event `source_event_id`) causes for `user_id`
/// and, when `mail` is on (the `notification_email` flag), mails it if the user's address is
/// known; otherwise it is kept in-app only.
/// `None` when this event already produced this user's notification.
///
/// # Errors
/// `Invalid` for an unusable user id (the event can never succeed), `Delivery` when the
/// sender failed (retry the event), `Internal`.
pub async fn notify<S: EventStore, M: Sender>(
    store: &S,
    sender: &M,
    mail: bool,
    source_event_id: &str,
    user_id: &str,
    trigger: &Trigger,
) -> Result<Option<Delivered>, NotificationError> {
    checked_user_id(user_id)?;
    let (id, created_at) =
        notification_id(source_event_id, user_id, polyshop_platform::now_millis());
    let message = trigger.message();
    let notification = Notification {
        id,
        user_id: user_id.to_owned(),
        kind: trigger.kind(),
        title: message.title,
        body: message.body,
        source_event_id: source_event_id.to_owned(),
        created_at,
        read_at: None,
    };
    if !store.insert(&notification).await? {
        return Ok(None);
    }
    let recipient = if mail {
        store.recipient(user_id).await?
    } else {
        tracing::debug!(user_id, "notification_email is off: in-app only");
        None
    };
    let channel = match recipient {
        Some(recipient) if is_mailable(&recipient.email) => {
            sender
                .send(store, &Mail::new(&notification, &recipient))
                .await?;
            sender.channel()
        }
        known => {
            tracing::info!(
                user_id,
                notification_id = %notification.id,
                address_known = known.is_some(),
                "no usable email address on file; notification kept in-app only"
            );
            IN_APP
        }
    };
    Ok(Some(Delivered {
        notification,
        channel,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        app::memory::{FailingSender, MemoryStore, RecordingSender},
        domain::NotificationKind,
    };

    const EVENT: &str = "0190b7a2-5c3e-7d41-9a2b-3c4d5e6f7a8b";

    fn ada() -> Recipient {
        Recipient {
            user_id: "u1".into(),
            email: "ada@example.com".into(),
            display_name: "Ada".into(),
            updated_at: 1,
        }
    }

    fn confirmed() -> Trigger {
        Trigger::OrderConfirmed {
            order_id: "o1".into(),
        }
    }

    #[tokio::test]
    async fn an_event_is_stored_and_mailed_once_per_user() {
        let store = MemoryStore::default();
        let sender = RecordingSender::default();
        remember_recipient(&store, &ada()).await.expect("recipient");
        let first = notify(&store, &sender, true, EVENT, "u1", &confirmed())
            .await
            .expect("notify")
            .expect("stored");
        assert_eq!(first.channel, "recording");
        assert_eq!(first.notification.kind, NotificationKind::OrderConfirmed);
        let again = notify(&store, &sender, true, EVENT, "u1", &confirmed())
            .await
            .expect("notify again");
        assert_eq!(again, None);
        assert_eq!(store.notifications().len(), 1);
        let sent = sender.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to_email, "ada@example.com");
        assert_eq!(sent[0].notification_id, first.notification.id);
    }

    #[tokio::test]
    async fn a_user_without_a_known_address_gets_an_in_app_notification_only() {
        let store = MemoryStore::default();
        let sender = RecordingSender::default();
        let delivered = notify(&store, &sender, true, EVENT, "u2", &confirmed())
            .await
            .expect("notify")
            .expect("stored");
        assert_eq!(delivered.channel, IN_APP);
        assert!(sender.sent().is_empty());
        assert_eq!(store.notifications().len(), 1);
    }

    #[tokio::test]
    async fn a_failed_delivery_is_an_error_the_consumer_retries() {
        let store = MemoryStore::default();
        remember_recipient(&store, &ada()).await.expect("recipient");
        let err = notify(&store, &FailingSender, true, EVENT, "u1", &confirmed())
            .await
            .expect_err("delivery fails");
        assert!(matches!(err, NotificationError::Delivery(_)), "{err}");
    }

    #[tokio::test]
    async fn an_unusable_user_id_is_invalid() {
        let store = MemoryStore::default();
        let sender = RecordingSender::default();
        for user_id in ["", "../x"] {
            let err = notify(&store, &sender, true, EVENT, user_id, &confirmed())
                .await
                .expect_err("invalid");
            assert!(matches!(err, NotificationError::Invalid(_)), "{err}");
        }
    }

    #[tokio::test]
    async fn an_older_user_update_does_not_overwrite_a_newer_address() {
        let store = MemoryStore::default();
        let newer = Recipient {
            email: "new@example.com".into(),
            updated_at: 5,
            ..ada()
        };
        remember_recipient(&store, &newer).await.expect("newer");
        remember_recipient(&store, &ada()).await.expect("older");
        let kept = store.recipient("u1").await.expect("read").expect("known");
        assert_eq!(kept.email, "new@example.com");
        forget_recipient(&store, "u1").await.expect("forget");
        assert_eq!(store.recipient("u1").await.expect("read"), None);
    }
}
