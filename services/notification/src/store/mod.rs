//! Persistence of the notification context with sea-orm: the `notifications`, `recipients`
//! and `mail_outbox` tables and their migrations; [`SeaNotificationRepository`] (the owner's
//! reads), [`TxnEventStore`] (a consumed event's writes, inside the consumer's transaction)
//! and [`SeaMailOutbox`] (the mail dispatcher's reads and status changes). Entities never
//! leave this module.

mod entities;
mod event_store;
mod mail_outbox;
mod repository;

pub use event_store::TxnEventStore;
pub use mail_outbox::SeaMailOutbox;
pub use repository::SeaNotificationRepository;

use polyshop_platform::db::Migration;
use sea_orm::DbErr;

use crate::domain::{Notification, NotificationError, NotificationKind};

/// Schema of the notification database, oldest first. `UNIQUE (source_event_id, user_id)`
/// makes "one notification per event per user" hold even if the inbox were bypassed.
///
/// Version 2 replaces `mailbox` (mail delivered inside the consumer's transaction) with
/// `mail_outbox`, one table for every mail with its status: the consumer records mail as
/// `pending`, the dispatcher sends it after the commit and marks it `sent` (or, having given
/// up, `failed`). The old rows were delivered: they come over as `sent`, their `To` as written
/// (`"Name" <address>`) in `to_email`.
pub const MIGRATIONS: &[Migration] = &[MIGRATION_1, MIGRATION_2];

const MIGRATION_1: Migration = Migration {
    version: 1,
    name: "notifications, recipients and mailbox",
    sql: "CREATE TABLE notifications (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            source_event_id TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            read_at BIGINT,
            CONSTRAINT notifications_once_per_event UNIQUE (source_event_id, user_id));
          CREATE INDEX notifications_by_user ON notifications (user_id, id);
          CREATE TABLE recipients (
            user_id TEXT PRIMARY KEY,
            email TEXT NOT NULL,
            display_name TEXT NOT NULL,
            updated_at BIGINT NOT NULL);
          CREATE TABLE mailbox (
            notification_id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            mail_to TEXT NOT NULL,
            mail_from TEXT NOT NULL,
            subject TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at BIGINT NOT NULL);
          CREATE INDEX mailbox_by_user ON mailbox (user_id, notification_id)",
};

const MIGRATION_2: Migration = Migration {
    version: 2,
    name: "mail outbox, sent after commit, in place of mailbox",
    sql: "CREATE TABLE mail_outbox (
            message_id TEXT PRIMARY KEY,
            notification_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            to_email TEXT NOT NULL,
            to_name TEXT NOT NULL,
            subject TEXT NOT NULL,
            body TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at BIGINT NOT NULL,
            last_error TEXT,
            channel TEXT,
            created_at BIGINT NOT NULL,
            sent_at BIGINT);
          CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
          INSERT INTO mail_outbox (message_id, notification_id, user_id, to_email, to_name,
              subject, body, status, attempts, next_attempt_at, channel, created_at, sent_at)
            SELECT '<' || notification_id || '@polyshop.local>', notification_id, user_id,
              mail_to, '', subject, body, 'sent', 1, created_at, 'mailbox', created_at,
              created_at
            FROM mailbox;
          DROP TABLE mailbox",
};

fn internal(e: DbErr) -> NotificationError {
    NotificationError::Internal(Box::new(e))
}

fn to_notification(row: entities::notification::Model) -> Result<Notification, NotificationError> {
    let kind = NotificationKind::parse(&row.kind).ok_or_else(|| {
        NotificationError::Internal(format!("unknown stored kind {:?}", row.kind).into())
    })?;
    Ok(Notification {
        id: row.id,
        user_id: row.user_id,
        kind,
        title: row.title,
        body: row.body,
        source_event_id: row.source_event_id,
        created_at: row.created_at,
        read_at: row.read_at,
    })
}
