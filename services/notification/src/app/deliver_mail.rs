//! Mail after commit: the consumer only records a mail in the mail outbox, inside its
//! transaction; [`MailDispatcher`] sends the committed ones afterwards, outside any
//! transaction. A batch of events that fails and is replayed one event at a time therefore
//! never sends anything twice: its rolled-back mail rows never existed.
//!
//! A batch of due mail is claimed (one transaction), each mail handed to the [`Sender`], and
//! the ones sent are marked sent with their `NotificationSent` (one more); a failure is recorded with the next attempt's time
//! ([`after_failure`]), so a relay that is down delays mail without holding up the consumers
//! or the other mail's retries. Sent mail is never picked again: a re-run sends nothing twice.
//! The one gap is a process that stops between the hand-over and the mark; it sends that mail
//! again after the claim lapses, with the same Message-ID for the receiver to drop.
//! [`MailDispatcher::try_dispatch_once`] does one pass at a given time, for tests;
//! [`MailDispatcher::run`] repeats it when woken and on an interval until shutdown.

use std::{sync::Arc, time::Duration};

use polyshop_platform::{events::outbox::OutboxSignal, shutdown::Shutdown};

use super::{MailOutbox, Sender};
use crate::domain::{NextAttempt, NotificationError, QueuedMail, after_failure};

/// Most mails sent by one pass.
pub const DISPATCH_BATCH: u64 = 32;
/// How long a claimed mail is left to its dispatcher: well beyond one SMTP exchange (10 s).
pub const CLAIM_MS: i64 = 60_000;
/// A pass this often even without a wake-up: retries come due, and on PostgreSQL a wake-up
/// may come before the commit it announces (see [`MailDispatcher::run`]).
pub const IDLE_POLL: Duration = Duration::from_secs(1);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Mails handed over and marked sent.
    pub sent: u64,
    /// Mails whose attempt failed (to be retried, or given up).
    pub failed: u64,
}

/// Sends the mail outbox's due mail through a [`Sender`].
#[derive(Debug)]
pub struct MailDispatcher<O, M> {
    outbox: Arc<O>,
    sender: Arc<M>,
    wake: OutboxSignal,
}

impl<O: MailOutbox, M: Sender> MailDispatcher<O, M> {
    /// A dispatcher from `outbox` through `sender`, woken through `wake` (which the consumer
    /// fires after recording mail).
    pub fn new(outbox: Arc<O>, sender: Arc<M>, wake: OutboxSignal) -> Self {
        Self {
            outbox,
            sender,
            wake,
        }
    }

    /// Sends up to [`DISPATCH_BATCH`] mails due at `now` (epoch ms; also the time recorded
    /// for their outcome) and reports what happened. A mail another dispatcher claimed is
    /// skipped.
    ///
    /// # Errors
    /// `Internal` when the outbox cannot be read or updated; mail not yet marked stays due.
    pub async fn try_dispatch_once(&self, now: i64) -> Result<Dispatched, NotificationError> {
        self.dispatch(now, None).await
    }

    /// One pass, stopping between two mails once `stopped` fires: a mail being handed over
    /// is finished and recorded rather than cut off. The batch is claimed in one transaction
    /// and the mails sent in it are marked in one more, so a pass costs two commits however
    /// many mails it sends; a failure is recorded on its own.
    async fn dispatch(
        &self,
        now: i64,
        stopped: Option<&Shutdown>,
    ) -> Result<Dispatched, NotificationError> {
        let mut done = Dispatched::default();
        let due = self.outbox.due(now, DISPATCH_BATCH).await?;
        if due.is_empty() {
            return Ok(done);
        }
        let ids: Vec<String> = due.iter().map(|q| q.mail.message_id()).collect();
        let taken = self.outbox.claim(&ids, now, now + CLAIM_MS).await?;
        let mut sent = Vec::with_capacity(taken.len());
        for (queued, message_id) in due.iter().zip(&ids) {
            if stopped.is_some_and(Shutdown::is_fired) {
                break;
            }
            if !taken.contains(message_id) {
                continue;
            }
            match self.sender.send(&queued.mail).await {
                Ok(()) => sent.push(&queued.mail),
                Err(e) => {
                    self.record_failure(queued, message_id, now, &e).await?;
                    done.failed += 1;
                }
            }
        }
        if !sent.is_empty() {
            let channel = self.sender.channel();
            if let Err(e) = self.outbox.sent(&sent, channel, now).await {
                tracing::error!(mails = sent.len(), error = %e, "mail sent but not recorded; it goes out again, same Message-ID, when its claim lapses");
                return Err(e);
            }
            for mail in &sent {
                tracing::info!(notification_id = %mail.notification_id, channel, "mail sent");
            }
            done.sent = sent.len() as u64;
        }
        Ok(done)
    }

    async fn record_failure(
        &self,
        queued: &QueuedMail,
        message_id: &str,
        now: i64,
        error: &NotificationError,
    ) -> Result<(), NotificationError> {
        let attempts = queued.attempts.saturating_add(1);
        let next = after_failure(attempts, now);
        let error = error.to_string();
        self.outbox
            .failed(&queued.mail, attempts, next, &error)
            .await?;
        match next {
            NextAttempt::At(at) => {
                tracing::warn!(message_id, attempts, retry_in_ms = at - now, %error, "mail not sent; will retry");
            }
            NextAttempt::GiveUp => {
                tracing::error!(message_id, attempts, %error, "mail not sent; given up");
            }
        }
        Ok(())
    }

    /// Dispatches at start, whenever woken, and every [`IDLE_POLL`], until `stopped` fires.
    /// A full batch is followed at once by another pass.
    ///
    /// The consumer wakes this before its transaction commits (it cannot see the commit). On
    /// SQLite that is enough: the pool's one connection is the consumer's until it commits, so
    /// the pass reads after the commit. On PostgreSQL the pass may read too early and the mail
    /// waits for the next poll.
    pub async fn run(self, stopped: Shutdown) {
        loop {
            loop {
                if stopped.is_fired() {
                    break;
                }
                let now = polyshop_platform::now_millis();
                match self.dispatch(now, Some(&stopped)).await {
                    Ok(done) if done.sent + done.failed >= DISPATCH_BATCH => {}
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "mail dispatch failed; retrying on the next poll");
                        break;
                    }
                }
            }
            tokio::select! {
                () = self.wake.woken() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
                () = stopped.clone().wait() => break,
            }
        }
        tracing::debug!("mail dispatcher stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        app::{
            EventStore,
            memory::{MemoryStore, RecordingSender},
        },
        domain::{MAX_MAIL_ATTEMPTS, Mail, MailStatus},
    };

    fn mail(n: u32) -> Mail {
        Mail {
            notification_id: format!("n{n}"),
            user_id: "u1".into(),
            to_email: "ada@example.com".into(),
            to_name: "Ada".into(),
            subject: format!("Mail {n}"),
            body: "Hello".into(),
        }
    }

    fn dispatcher(
        store: &Arc<MemoryStore>,
        sender: &Arc<RecordingSender>,
    ) -> MailDispatcher<MemoryStore, RecordingSender> {
        MailDispatcher::new(store.clone(), sender.clone(), OutboxSignal::new())
    }

    #[tokio::test]
    async fn each_mail_is_sent_once_however_often_the_outbox_is_dispatched() {
        let store = Arc::new(MemoryStore::default());
        let sender = Arc::new(RecordingSender::default());
        for n in 1..=3 {
            assert!(store.queue_mail(&mail(n), 0).await.expect("queue"));
        }
        // The same mail recorded again (same Message-ID) is not a second mail.
        assert!(!store.queue_mail(&mail(1), 0).await.expect("queue again"));
        let dispatcher = dispatcher(&store, &sender);

        let first = dispatcher.try_dispatch_once(10).await.expect("pass");
        assert_eq!(first, Dispatched { sent: 3, failed: 0 });
        for later in [10, 11, 10_000_000] {
            let again = dispatcher.try_dispatch_once(later).await.expect("again");
            assert_eq!(again, Dispatched::default(), "at {later}");
        }
        let sent: Vec<_> = sender.sent().iter().map(Mail::message_id).collect();
        assert_eq!(
            sent,
            [
                "<n1@polyshop.local>",
                "<n2@polyshop.local>",
                "<n3@polyshop.local>"
            ]
        );
        // Each sent mail announced NotificationSent once, through the sender's channel.
        assert_eq!(
            store.announced(),
            [
                ("n1", "recording"),
                ("n2", "recording"),
                ("n3", "recording")
            ]
            .map(|(n, c)| (n.to_owned(), c))
        );
        assert!(store.outbox().iter().all(|m| m.status == MailStatus::Sent));
    }

    #[tokio::test]
    async fn a_failed_mail_is_retried_after_its_backoff_without_holding_up_the_others() {
        let store = Arc::new(MemoryStore::default());
        let sender = Arc::new(RecordingSender::failing_first(1));
        store.queue_mail(&mail(1), 0).await.expect("queue");
        store.queue_mail(&mail(2), 0).await.expect("queue");
        let dispatcher = dispatcher(&store, &sender);

        // The relay refuses the first mail; the second goes out in the same pass.
        let first = dispatcher.try_dispatch_once(100).await.expect("pass");
        assert_eq!(first, Dispatched { sent: 1, failed: 1 });
        let row = store.outbox()[0].clone();
        assert_eq!((row.status, row.attempts), (MailStatus::Pending, 1));
        assert_eq!(row.next_attempt_at, 1_100, "one second later");
        assert!(
            row.last_error
                .as_deref()
                .is_some_and(|e| e.contains("refused"))
        );

        // Not due yet: nothing is sent, the sent one is not sent again.
        let early = dispatcher.try_dispatch_once(1_099).await.expect("early");
        assert_eq!(early, Dispatched::default());
        let due = dispatcher.try_dispatch_once(1_100).await.expect("due");
        assert_eq!(due, Dispatched { sent: 1, failed: 0 });
        let sent: Vec<_> = sender.sent().iter().map(|m| m.subject.clone()).collect();
        assert_eq!(sent, ["Mail 2", "Mail 1"]);
        assert_eq!(store.announced().len(), 2);
    }

    #[tokio::test]
    async fn a_mail_that_keeps_failing_is_given_up_and_never_announced() {
        let store = Arc::new(MemoryStore::default());
        let sender = Arc::new(RecordingSender::failing_first(usize::MAX));
        store.queue_mail(&mail(1), 0).await.expect("queue");
        let dispatcher = dispatcher(&store, &sender);
        let mut now = 0;
        for _ in 0..MAX_MAIL_ATTEMPTS {
            let done = dispatcher.try_dispatch_once(now).await.expect("pass");
            assert_eq!(done, Dispatched { sent: 0, failed: 1 });
            now = store.outbox()[0].next_attempt_at;
        }
        let row = store.outbox()[0].clone();
        assert_eq!(row.status, MailStatus::Failed);
        assert_eq!(row.attempts, MAX_MAIL_ATTEMPTS);
        let after = dispatcher
            .try_dispatch_once(i64::MAX / 2)
            .await
            .expect("pass");
        assert_eq!(after, Dispatched::default());
        assert!(store.announced().is_empty());
    }

    #[tokio::test]
    async fn a_mail_claimed_by_another_dispatcher_is_left_to_it_until_the_claim_lapses() {
        let store = Arc::new(MemoryStore::default());
        let sender = Arc::new(RecordingSender::default());
        store.queue_mail(&mail(1), 0).await.expect("queue");
        // Another dispatcher took it at 5 and died before marking it.
        let taken = store
            .claim(&["<n1@polyshop.local>".to_owned()], 5, 5 + CLAIM_MS)
            .await
            .expect("claim");
        assert_eq!(taken.len(), 1);
        let dispatcher = dispatcher(&store, &sender);
        let during = dispatcher.try_dispatch_once(6).await.expect("pass");
        assert_eq!(during, Dispatched::default());
        let after = dispatcher
            .try_dispatch_once(5 + CLAIM_MS)
            .await
            .expect("pass");
        assert_eq!(after, Dispatched { sent: 1, failed: 0 });
    }

    #[tokio::test]
    async fn run_sends_woken_mail_and_stops_on_shutdown() {
        let store = Arc::new(MemoryStore::default());
        let sender = Arc::new(RecordingSender::default());
        let wake = OutboxSignal::new();
        let (stop, stopped) = polyshop_platform::shutdown::channel();
        let task = tokio::spawn(
            MailDispatcher::new(store.clone(), sender.clone(), wake.clone()).run(stopped),
        );
        let now = polyshop_platform::now_millis();
        store.queue_mail(&mail(1), now).await.expect("queue");
        wake.wake();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while sender.sent().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "not sent in time");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.fire();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops")
            .expect("no panic");
        assert_eq!(sender.sent().len(), 1);
    }
}
