//! Consuming domain events: keep the recipient directory current, and turn an event into one
//! stored notification per user, with its mail recorded in the mail outbox when the user's
//! address is known. Nothing is sent here: this runs inside the consumer's transaction, which
//! may be rolled back and replayed (a batch with a failing event is applied again one event
//! at a time), so mail goes out only after the commit, through the [`MailDispatcher`].
//!
//! [`MailDispatcher`]: super::MailDispatcher

use polyshop_platform::status::Violations;

use super::EventStore;
use crate::domain::{
    Mail, Notification, NotificationError, Recipient, Trigger, check_user_id, is_mailable,
    notification_id,
};

/// The channel reported when no mail goes out (no usable address on file, or mail is off).
pub const IN_APP: &str = "in_app";

/// A notification that was stored by this call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notified {
    /// The stored notification.
    pub notification: Notification,
    /// Whether its mail was recorded in the mail outbox; `false` means in-app only.
    pub mailed: bool,
}

fn checked_user_id(user_id: &str) -> Result<(), NotificationError> {
    // User ids here come from events consumed from NATS, which no contract layer checks.
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
/// and, when `mail` is on (the `notification_email` flag) and the user's address is known,
/// records its mail in the mail outbox; otherwise it is kept in-app only.
/// `None` when this event already produced this user's notification.
///
/// # Errors
/// `Invalid` for an unusable user id (the event can never succeed), `Internal`.
pub async fn notify<S: EventStore>(
    store: &S,
    mail: bool,
    source_event_id: &str,
    user_id: &str,
    trigger: &Trigger,
) -> Result<Option<Notified>, NotificationError> {
    checked_user_id(user_id)?;
    let now = polyshop_platform::now_millis();
    let (id, created_at) = notification_id(source_event_id, user_id, now);
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
    let mailed = match recipient {
        Some(recipient) if is_mailable(&recipient.email) => {
            // Keyed by Message-ID: a mail already there is this very mail, not a second one.
            store
                .queue_mail(&Mail::new(&notification, &recipient), now)
                .await?;
            true
        }
        known => {
            tracing::info!(
                user_id,
                notification_id = %notification.id,
                address_known = known.is_some(),
                "no usable email address on file; notification kept in-app only"
            );
            false
        }
    };
    Ok(Some(Notified {
        notification,
        mailed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        app::memory::MemoryStore,
        domain::{MailStatus, NotificationKind},
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
    async fn an_event_is_stored_and_its_mail_queued_once_per_user() {
        let store = MemoryStore::default();
        remember_recipient(&store, &ada()).await.expect("recipient");
        let first = notify(&store, true, EVENT, "u1", &confirmed())
            .await
            .expect("notify")
            .expect("stored");
        assert!(first.mailed);
        assert_eq!(first.notification.kind, NotificationKind::OrderConfirmed);
        let again = notify(&store, true, EVENT, "u1", &confirmed())
            .await
            .expect("notify again");
        assert_eq!(again, None);
        assert_eq!(store.notifications().len(), 1);
        let queued = store.outbox();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].mail.to_email, "ada@example.com");
        assert_eq!(queued[0].mail.notification_id, first.notification.id);
        assert_eq!(queued[0].status, MailStatus::Pending);
    }

    #[tokio::test]
    async fn a_user_without_a_known_address_gets_an_in_app_notification_only() {
        let store = MemoryStore::default();
        let notified = notify(&store, true, EVENT, "u2", &confirmed())
            .await
            .expect("notify")
            .expect("stored");
        assert!(!notified.mailed);
        assert!(store.outbox().is_empty());
        assert_eq!(store.notifications().len(), 1);
    }

    #[tokio::test]
    async fn with_mail_off_a_known_user_gets_an_in_app_notification_only() {
        let store = MemoryStore::default();
        remember_recipient(&store, &ada()).await.expect("recipient");
        let notified = notify(&store, false, EVENT, "u1", &confirmed())
            .await
            .expect("notify")
            .expect("stored");
        assert!(!notified.mailed);
        assert!(store.outbox().is_empty());
    }

    #[tokio::test]
    async fn an_unusable_user_id_is_invalid() {
        let store = MemoryStore::default();
        for user_id in ["", "../x"] {
            let err = notify(&store, true, EVENT, user_id, &confirmed())
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
