//! Use cases of the notification context over its ports: [`NotificationRepository`] (what
//! the owner reads and marks), [`EventStore`] (the writes of one consumed event, inside the
//! consumer's transaction) and [`Sender`] (mail delivery, with the [`Mailbox`] it may use).

mod list_notifications;
mod mark_notification_read;
#[cfg(test)]
pub(crate) mod memory;
mod notify;

pub use list_notifications::*;
pub use mark_notification_read::*;
pub use notify::*;

use std::future::Future;

use polyshop_platform::auth::Principal;

use crate::domain::{Mail, Notification, NotificationError, Recipient};

/// Stored notifications, as their owner sees them.
pub trait NotificationRepository: Send + Sync + 'static {
    /// `user_id`'s notifications with id below `before` (all when `None`), newest (highest
    /// id) first, at most `limit`; only unread ones when `unread_only`.
    fn list(
        &self,
        user_id: &str,
        unread_only: bool,
        before: Option<String>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<Notification>, NotificationError>> + Send;
    /// How many of `user_id`'s notifications are unread.
    fn unread_count(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<u64, NotificationError>> + Send;
    /// Sets `read_at` of `user_id`'s notification `id` to `at` unless already set; the
    /// notification afterwards, or `None` if `user_id` has no notification `id`.
    fn mark_read(
        &self,
        user_id: &str,
        id: &str,
        at: i64,
    ) -> impl Future<Output = Result<Option<Notification>, NotificationError>> + Send;
}

/// The local copy of outgoing mail (the `mailbox` table), keyed by notification id.
pub trait Mailbox: Send + Sync {
    /// Keeps `mail` as sent from `from`; `false` if a mail for this notification is there.
    fn put(
        &self,
        mail: &Mail,
        from: &str,
    ) -> impl Future<Output = Result<bool, NotificationError>> + Send;
}

/// The writes of one consumed event. Implementations work inside the consumer's transaction,
/// so everything commits (or not) together with the event's inbox row.
pub trait EventStore: Mailbox {
    /// Inserts or replaces the recipient, unless the stored one has a newer `updated_at`.
    fn upsert_recipient(
        &self,
        recipient: &Recipient,
    ) -> impl Future<Output = Result<(), NotificationError>> + Send;
    /// Forgets a deleted user's address.
    fn remove_recipient(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<(), NotificationError>> + Send;
    /// Where `user_id`'s mail goes, if known.
    fn recipient(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Option<Recipient>, NotificationError>> + Send;
    /// Stores a new notification; `false` if one for its (source event, user) exists.
    fn insert(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<bool, NotificationError>> + Send;
}

/// Delivers mail. Called inside the consumer's transaction: a failure rolls the notification
/// back and the event is retried, so `send` must tolerate being called again for the same
/// `notification_id`.
pub trait Sender: Send + Sync + 'static {
    /// The channel name reported in `NotificationSent`, e.g. `mailbox` or `smtp`.
    fn channel(&self) -> &'static str;
    /// Hands `mail` over, possibly keeping a copy in `mailbox`.
    ///
    /// # Errors
    /// `Delivery` when it could not be handed over, `Internal` for storage trouble.
    fn send<B: Mailbox>(
        &self,
        mailbox: &B,
        mail: &Mail,
    ) -> impl Future<Output = Result<(), NotificationError>> + Send;
}

/// The caller's user id: notifications belong to users, and a service token has none.
///
/// # Errors
/// `UserRequired` for a service caller.
pub fn owner(caller: &Principal) -> Result<&str, NotificationError> {
    caller.user_id().ok_or(NotificationError::UserRequired)
}
