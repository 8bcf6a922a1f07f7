//! [`TxnEventStore`]: the writes of one consumed event, through the consumer's transaction,
//! so they commit together with the event's inbox row — or not at all. That includes the
//! event's mail, as a pending `mail_outbox` row: a rolled-back event leaves no mail behind.

use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseTransaction, EntityTrait, Statement, TryInsertResult,
};

use super::{
    entities::{mail_outbox, notification, recipient},
    internal,
};
use crate::{
    app::EventStore,
    domain::{Mail, MailStatus, Notification, NotificationError, Recipient},
};

/// The event-side store over a consumer's transaction.
#[derive(Debug)]
pub struct TxnEventStore<'a> {
    txn: &'a DatabaseTransaction,
}

impl<'a> TxnEventStore<'a> {
    /// Writes through `txn`.
    pub fn new(txn: &'a DatabaseTransaction) -> Self {
        Self { txn }
    }
}

fn inserted(result: TryInsertResult<u64>) -> bool {
    matches!(result, TryInsertResult::Inserted(n) if n > 0)
}

impl EventStore for TxnEventStore<'_> {
    async fn upsert_recipient(&self, r: &Recipient) -> Result<(), NotificationError> {
        let backend = self.txn.get_database_backend();
        // Portable upsert (SQLite ≥ 3.24, PostgreSQL); the WHERE keeps a newer row.
        let sql = "INSERT INTO recipients (user_id, email, display_name, updated_at)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT (user_id) DO UPDATE SET email = excluded.email,
                     display_name = excluded.display_name, updated_at = excluded.updated_at
                   WHERE recipients.updated_at <= excluded.updated_at";
        self.txn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                polyshop_platform::db::placeholders(backend, sql),
                [
                    r.user_id.clone().into(),
                    r.email.clone().into(),
                    r.display_name.clone().into(),
                    r.updated_at.into(),
                ],
            ))
            .await
            .map_err(internal)?;
        Ok(())
    }

    async fn remove_recipient(&self, user_id: &str) -> Result<(), NotificationError> {
        recipient::Entity::delete_by_id(user_id.to_owned())
            .exec(self.txn)
            .await
            .map_err(internal)?;
        Ok(())
    }

    async fn recipient(&self, user_id: &str) -> Result<Option<Recipient>, NotificationError> {
        let row = recipient::Entity::find_by_id(user_id.to_owned())
            .one(self.txn)
            .await
            .map_err(internal)?;
        Ok(row.map(|r| Recipient {
            user_id: r.user_id,
            email: r.email,
            display_name: r.display_name,
            updated_at: r.updated_at,
        }))
    }

    async fn insert(&self, n: &Notification) -> Result<bool, NotificationError> {
        let row = notification::ActiveModel {
            id: Set(n.id.clone()),
            user_id: Set(n.user_id.clone()),
            kind: Set(n.kind.as_str().to_owned()),
            title: Set(n.title.clone()),
            body: Set(n.body.clone()),
            source_event_id: Set(n.source_event_id.clone()),
            created_at: Set(n.created_at),
            read_at: Set(n.read_at),
        };
        // DO NOTHING rather than a unique violation: on PostgreSQL an error would abort the
        // whole transaction, inbox row included.
        let result = notification::Entity::insert(row)
            .on_conflict_do_nothing_on([
                notification::Column::SourceEventId,
                notification::Column::UserId,
            ])
            .exec_without_returning(self.txn)
            .await
            .map_err(internal)?;
        Ok(inserted(result))
    }

    async fn queue_mail(&self, mail: &Mail, at: i64) -> Result<bool, NotificationError> {
        let row = mail_outbox::ActiveModel {
            message_id: Set(mail.message_id()),
            notification_id: Set(mail.notification_id.clone()),
            user_id: Set(mail.user_id.clone()),
            to_email: Set(mail.to_email.clone()),
            to_name: Set(mail.to_name.clone()),
            subject: Set(mail.subject.clone()),
            body: Set(mail.body.clone()),
            status: Set(MailStatus::Pending.as_str().to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(at),
            last_error: Set(None),
            channel: Set(None),
            created_at: Set(at),
            sent_at: Set(None),
        };
        let result = mail_outbox::Entity::insert(row)
            .on_conflict_do_nothing_on([mail_outbox::Column::MessageId])
            .exec_without_returning(self.txn)
            .await
            .map_err(internal)?;
        Ok(inserted(result))
    }
}
