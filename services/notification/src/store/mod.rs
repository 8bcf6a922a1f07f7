//! Persistence of the notification context with sea-orm: the `notifications`, `recipients`
//! and `mailbox` tables and their migrations; [`SeaNotificationRepository`] (the owner's
//! reads) and [`TxnEventStore`] (a consumed event's writes, inside the consumer's
//! transaction). Entities never leave this module.

mod entities;
mod event_store;
mod repository;

pub use event_store::TxnEventStore;
pub use repository::SeaNotificationRepository;

use polyshop_platform::db::Migration;
use sea_orm::DbErr;

use crate::domain::{Notification, NotificationError, NotificationKind};

/// Schema of the notification database, oldest first. `UNIQUE (source_event_id, user_id)`
/// makes "one notification per event per user" hold even if the inbox were bypassed.
pub const MIGRATIONS: &[Migration] = &[Migration {
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
}];

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
