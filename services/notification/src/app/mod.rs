//! Use cases of the notification context over its ports: [`NotificationRepository`] (what
//! the owner reads and marks), [`EventStore`] (the writes of one consumed event, inside the
//! consumer's transaction, mail included as an outbox row), [`MailOutbox`] (that mail after
//! the commit) and [`Sender`] (handing one mail over). [`MailDispatcher`] is the background
//! use case that sends the outbox's mail.

mod deliver_mail;
mod list_notifications;
mod mark_notification_read;
#[cfg(test)]
pub(crate) mod memory;
mod notify;

pub use deliver_mail::*;
pub use list_notifications::*;
pub use mark_notification_read::*;
pub use notify::*;

use std::future::Future;

use polyshop_platform::auth::Principal;

use crate::domain::{Mail, NextAttempt, Notification, NotificationError, QueuedMail, Recipient};

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

/// The writes of one consumed event. Implementations work inside the consumer's transaction,
/// so everything commits (or not) together with the event's inbox row.
pub trait EventStore: Send + Sync {
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
    /// Records `mail` in the mail outbox as pending from `at` (epoch ms), for the
    /// [`MailDispatcher`] to send after the commit; `false` if a mail with its Message-ID is
    /// there already. Nothing is sent here.
    fn queue_mail(
        &self,
        mail: &Mail,
        at: i64,
    ) -> impl Future<Output = Result<bool, NotificationError>> + Send;
}

/// The mail outbox as the [`MailDispatcher`] sees it: committed mail, by Message-ID. Each
/// call is its own short transaction; none is open while a mail is being sent.
pub trait MailOutbox: Send + Sync + 'static {
    /// Up to `limit` pending mails due at `now` (epoch ms), oldest first.
    fn due(
        &self,
        now: i64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<QueuedMail>, NotificationError>> + Send;
    /// Takes the pending mails of `message_ids` that are still due at `now`, making them not
    /// due before `until`, so no other dispatcher sends them meanwhile (and a dispatcher that
    /// died with them leaves them due again then); returns the ones taken. One transaction
    /// for the batch: under load a claim per mail would cost a commit (an fsync) per mail.
    fn claim(
        &self,
        message_ids: &[String],
        now: i64,
        until: i64,
    ) -> impl Future<Output = Result<Vec<String>, NotificationError>> + Send;
    /// Marks the pending `mails` sent through `channel` at `at` and, in the same transaction,
    /// publishes `NotificationSent` for each one's notification. Mail not pending is left
    /// alone.
    fn sent(
        &self,
        mails: &[&Mail],
        channel: &'static str,
        at: i64,
    ) -> impl Future<Output = Result<(), NotificationError>> + Send;
    /// Records the `attempts`-th failed attempt at the pending `mail` with `error`: pending
    /// again at the time `next` says, or failed for good.
    fn failed(
        &self,
        mail: &Mail,
        attempts: u32,
        next: NextAttempt,
        error: &str,
    ) -> impl Future<Output = Result<(), NotificationError>> + Send;
}

/// Delivers mail. Called by the [`MailDispatcher`] after the consumer committed, never inside
/// a transaction. The dispatcher records a mail as sent only after `send` returned, so a
/// process stopped in between sends it again: `send` must keep the mail's Message-ID
/// ([`Mail::message_id`]) so the receiving side can tell the repeat.
pub trait Sender: Send + Sync + 'static {
    /// The channel name reported in `NotificationSent`, e.g. `mailbox` or `smtp`.
    fn channel(&self) -> &'static str;
    /// Hands `mail` over.
    ///
    /// # Errors
    /// `Delivery` when it could not be handed over (the dispatcher tries again later).
    fn send(&self, mail: &Mail) -> impl Future<Output = Result<(), NotificationError>> + Send;
}

/// The caller's user id: notifications belong to users, and a service token has none.
///
/// # Errors
/// `UserRequired` for a service caller.
pub fn owner(caller: &Principal) -> Result<&str, NotificationError> {
    caller.user_id().ok_or(NotificationError::UserRequired)
}
