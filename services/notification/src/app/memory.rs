//! In-memory fakes of the ports, for the use-case tests.

use std::sync::{Mutex, MutexGuard};

use super::{EventStore, MailOutbox, NotificationRepository, Sender};
use crate::domain::{
    Mail, MailStatus, NextAttempt, Notification, NotificationError, QueuedMail, Recipient,
};

#[derive(Debug, Default)]
struct State {
    notifications: Vec<Notification>,
    recipients: Vec<Recipient>,
    outbox: Vec<OutboxRow>,
    /// `NotificationSent` as published for sent mail: (notification id, channel).
    announced: Vec<(String, &'static str)>,
}

/// One mail outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub mail: Mail,
    pub attempts: u32,
    pub status: MailStatus,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
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

    pub fn outbox(&self) -> Vec<OutboxRow> {
        self.state().outbox.clone()
    }

    pub fn announced(&self) -> Vec<(String, &'static str)> {
        self.state().announced.clone()
    }

    /// The pending row of `message_id`, if any.
    fn pending<'a>(state: &'a mut State, message_id: &str) -> Option<&'a mut OutboxRow> {
        state
            .outbox
            .iter_mut()
            .find(|r| r.status == MailStatus::Pending && r.mail.message_id() == message_id)
    }
}

impl MailOutbox for MemoryStore {
    async fn due(&self, now: i64, limit: u64) -> Result<Vec<QueuedMail>, NotificationError> {
        let state = self.state();
        Ok(state
            .outbox
            .iter()
            .filter(|r| r.status == MailStatus::Pending && r.next_attempt_at <= now)
            .take(usize::try_from(limit).expect("small"))
            .map(|r| QueuedMail {
                mail: r.mail.clone(),
                attempts: r.attempts,
            })
            .collect())
    }

    async fn claim(
        &self,
        message_ids: &[String],
        now: i64,
        until: i64,
    ) -> Result<Vec<String>, NotificationError> {
        let mut state = self.state();
        let mut taken = Vec::new();
        for message_id in message_ids {
            if let Some(row) = Self::pending(&mut state, message_id)
                && row.next_attempt_at <= now
            {
                row.next_attempt_at = until;
                taken.push(message_id.clone());
            }
        }
        Ok(taken)
    }

    async fn sent(
        &self,
        mails: &[&Mail],
        channel: &'static str,
        _at: i64,
    ) -> Result<(), NotificationError> {
        let mut state = self.state();
        for mail in mails {
            if let Some(row) = Self::pending(&mut state, &mail.message_id()) {
                row.status = MailStatus::Sent;
                state
                    .announced
                    .push((mail.notification_id.clone(), channel));
            }
        }
        Ok(())
    }

    async fn failed(
        &self,
        mail: &Mail,
        attempts: u32,
        next: NextAttempt,
        error: &str,
    ) -> Result<(), NotificationError> {
        let mut state = self.state();
        if let Some(row) = Self::pending(&mut state, &mail.message_id()) {
            row.attempts = attempts;
            row.last_error = Some(error.to_owned());
            match next {
                NextAttempt::At(at) => row.next_attempt_at = at,
                NextAttempt::GiveUp => row.status = MailStatus::Failed,
            }
        }
        Ok(())
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

    async fn queue_mail(&self, mail: &Mail, at: i64) -> Result<bool, NotificationError> {
        let mut state = self.state();
        if state
            .outbox
            .iter()
            .any(|r| r.mail.message_id() == mail.message_id())
        {
            return Ok(false);
        }
        state.outbox.push(OutboxRow {
            mail: mail.clone(),
            attempts: 0,
            status: MailStatus::Pending,
            next_attempt_at: at,
            last_error: None,
        });
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

/// Records what it was asked to send, after refusing the first `refuse` mails.
#[derive(Debug, Default)]
pub struct RecordingSender {
    sent: Mutex<Vec<Mail>>,
    refuse: Mutex<usize>,
}

impl RecordingSender {
    /// Refuses the first `n` mails, like an SMTP relay that is down for a while.
    pub fn failing_first(n: usize) -> Self {
        Self {
            refuse: Mutex::new(n),
            ..Self::default()
        }
    }

    pub fn sent(&self) -> Vec<Mail> {
        self.sent.lock().expect("not poisoned").clone()
    }
}

impl Sender for RecordingSender {
    fn channel(&self) -> &'static str {
        "recording"
    }

    async fn send(&self, mail: &Mail) -> Result<(), NotificationError> {
        let mut refuse = self.refuse.lock().expect("not poisoned");
        if *refuse > 0 {
            *refuse -= 1;
            return Err(NotificationError::Delivery(
                "451 refused: relay is down".into(),
            ));
        }
        self.sent.lock().expect("not poisoned").push(mail.clone());
        Ok(())
    }
}
