//! In-memory fakes of the ports, for the use-case tests.

use std::sync::{Mutex, MutexGuard};

use super::{EventStore, Mailbox, NotificationRepository, Sender};
use crate::domain::{Mail, Notification, NotificationError, Recipient};

#[derive(Debug, Default)]
struct State {
    notifications: Vec<Notification>,
    recipients: Vec<Recipient>,
    mailbox: Vec<Mail>,
}

/// Every port over vectors.
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<State>);

impl MemoryStore {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().expect("not poisoned")
    }

    pub fn notifications(&self) -> Vec<Notification> {
        self.state().notifications.clone()
    }

    pub fn add(&self, notification: Notification) {
        self.state().notifications.push(notification);
    }
}

impl Mailbox for MemoryStore {
    async fn put(&self, mail: &Mail, _from: &str) -> Result<bool, NotificationError> {
        let mut state = self.state();
        if state
            .mailbox
            .iter()
            .any(|m| m.notification_id == mail.notification_id)
        {
            return Ok(false);
        }
        state.mailbox.push(mail.clone());
        Ok(true)
    }
}

impl EventStore for MemoryStore {
    async fn upsert_recipient(&self, recipient: &Recipient) -> Result<(), NotificationError> {
        let mut state = self.state();
        match state
            .recipients
            .iter_mut()
            .find(|r| r.user_id == recipient.user_id)
        {
            Some(r) if r.updated_at <= recipient.updated_at => *r = recipient.clone(),
            Some(_) => {}
            None => state.recipients.push(recipient.clone()),
        }
        Ok(())
    }

    async fn remove_recipient(&self, user_id: &str) -> Result<(), NotificationError> {
        self.state().recipients.retain(|r| r.user_id != user_id);
        Ok(())
    }

    async fn recipient(&self, user_id: &str) -> Result<Option<Recipient>, NotificationError> {
        Ok(self
            .state()
            .recipients
            .iter()
            .find(|r| r.user_id == user_id)
            .cloned())
    }

    async fn insert(&self, notification: &Notification) -> Result<bool, NotificationError> {
        let mut state = self.state();
        if state.notifications.iter().any(|n| {
            n.source_event_id == notification.source_event_id && n.user_id == notification.user_id
        }) {
            return Ok(false);
        }
        state.notifications.push(notification.clone());
        Ok(true)
    }
}

impl NotificationRepository for MemoryStore {
    async fn list(
        &self,
        user_id: &str,
        unread_only: bool,
        before: Option<String>,
        limit: u64,
    ) -> Result<Vec<Notification>, NotificationError> {
        let mut rows: Vec<Notification> = self
            .state()
            .notifications
            .iter()
            .filter(|n| n.user_id == user_id && !(unread_only && n.is_read()))
            .filter(|n| before.as_ref().is_none_or(|b| n.id < *b))
            .cloned()
            .collect();
        rows.sort_by(|a, b| b.id.cmp(&a.id));
        rows.truncate(usize::try_from(limit).expect("small"));
        Ok(rows)
    }

    async fn unread_count(&self, user_id: &str) -> Result<u64, NotificationError> {
        let state = self.state();
        let n = state
            .notifications
            .iter()
            .filter(|n| n.user_id == user_id && !n.is_read())
            .count();
        Ok(n as u64)
    }

    async fn mark_read(
        &self,
        user_id: &str,
        id: &str,
        at: i64,
    ) -> Result<Option<Notification>, NotificationError> {
        let mut state = self.state();
        let Some(n) = state
            .notifications
            .iter_mut()
            .find(|n| n.id == id && n.user_id == user_id)
        else {
            return Ok(None);
        };
        n.read_at.get_or_insert(at);
        Ok(Some(n.clone()))
    }
}

/// Records what it was asked to send.
#[derive(Debug, Default)]
pub struct RecordingSender(Mutex<Vec<Mail>>);

impl RecordingSender {
    pub fn sent(&self) -> Vec<Mail> {
        self.0.lock().expect("not poisoned").clone()
    }
}

impl Sender for RecordingSender {
    fn channel(&self) -> &'static str {
        "recording"
    }

    async fn send<B: Mailbox>(&self, _mailbox: &B, mail: &Mail) -> Result<(), NotificationError> {
        self.0.lock().expect("not poisoned").push(mail.clone());
        Ok(())
    }
}

/// Always fails, like an SMTP relay that is down.
#[derive(Debug)]
pub struct FailingSender;

impl Sender for FailingSender {
    fn channel(&self) -> &'static str {
        "failing"
    }

    async fn send<B: Mailbox>(&self, _mailbox: &B, _mail: &Mail) -> Result<(), NotificationError> {
        Err(NotificationError::Delivery("relay is down".into()))
    }
}
