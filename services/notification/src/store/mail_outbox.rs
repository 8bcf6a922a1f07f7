//! [`SeaMailOutbox`]: the mail dispatcher's side of the `mail_outbox` table. Every status
//! change is one conditional `UPDATE` whose `WHERE` names the state it leaves (pending, due),
//! checked by rows affected, so two dispatchers cannot both take or both finish a mail.

use polyshop_platform::events::outbox::{self, OutboxSignal};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};

use super::{
    entities::{mail_outbox, notification},
    internal, to_notification,
};
use crate::{
    app::MailOutbox,
    domain::{Mail, MailStatus, NextAttempt, NotificationError, QueuedMail},
    events,
};

/// The mail outbox over a sea-orm connection.
#[derive(Debug, Clone)]
pub struct SeaMailOutbox {
    db: DatabaseConnection,
    relay: OutboxSignal,
}

impl SeaMailOutbox {
    /// The outbox over `db` (already migrated, event outbox included), waking the event relay
    /// through `relay` after committing a `NotificationSent`.
    pub fn new(db: DatabaseConnection, relay: OutboxSignal) -> Self {
        Self { db, relay }
    }
}

fn pending() -> impl sea_orm::sea_query::IntoCondition {
    mail_outbox::Column::Status.eq(MailStatus::Pending.as_str())
}

fn queued(row: mail_outbox::Model) -> QueuedMail {
    QueuedMail {
        mail: Mail {
            notification_id: row.notification_id,
            user_id: row.user_id,
            to_email: row.to_email,
            to_name: row.to_name,
            subject: row.subject,
            body: row.body,
        },
        attempts: u32::try_from(row.attempts).unwrap_or(0),
    }
}

impl MailOutbox for SeaMailOutbox {
    async fn due(&self, now: i64, limit: u64) -> Result<Vec<QueuedMail>, NotificationError> {
        let rows = mail_outbox::Entity::find()
            .filter(pending())
            .filter(mail_outbox::Column::NextAttemptAt.lte(now))
            .order_by_asc(mail_outbox::Column::CreatedAt)
            .order_by_asc(mail_outbox::Column::MessageId)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        Ok(rows.into_iter().map(queued).collect())
    }

    async fn claim(
        &self,
        message_ids: &[String],
        now: i64,
        until: i64,
    ) -> Result<Vec<String>, NotificationError> {
        let txn = self.db.begin().await.map_err(internal)?;
        let mut taken = Vec::with_capacity(message_ids.len());
        for message_id in message_ids {
            // Each row's own conditional UPDATE: a row another dispatcher took is left out.
            let result = mail_outbox::Entity::update_many()
                .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(until))
                .filter(mail_outbox::Column::MessageId.eq(message_id.as_str()))
                .filter(pending())
                .filter(mail_outbox::Column::NextAttemptAt.lte(now))
                .exec(&txn)
                .await;
            match result {
                Ok(r) if r.rows_affected == 1 => taken.push(message_id.clone()),
                Ok(_) => {}
                Err(e) => {
                    // Roll back now rather than on drop: SQLite has one pooled connection.
                    let _ = txn.rollback().await;
                    return Err(internal(e));
                }
            }
        }
        txn.commit().await.map_err(internal)?;
        Ok(taken)
    }

    async fn sent(
        &self,
        mails: &[&Mail],
        channel: &'static str,
        at: i64,
    ) -> Result<(), NotificationError> {
        let txn = self.db.begin().await.map_err(internal)?;
        let mut announced = false;
        for mail in mails {
            // A mail someone else finished was announced by their transaction.
            match mark_sent(&txn, mail, channel, at).await {
                Ok(marked) => announced |= marked,
                Err(e) => {
                    let _ = txn.rollback().await;
                    return Err(e);
                }
            }
        }
        txn.commit().await.map_err(internal)?;
        if announced {
            self.relay.wake();
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
        let error: String = error.chars().take(500).collect();
        let mut update = mail_outbox::Entity::update_many()
            .col_expr(
                mail_outbox::Column::Attempts,
                Expr::value(i32::try_from(attempts).unwrap_or(i32::MAX)),
            )
            .col_expr(mail_outbox::Column::LastError, Expr::value(error));
        update = match next {
            NextAttempt::At(at) => {
                update.col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(at))
            }
            NextAttempt::GiveUp => update.col_expr(
                mail_outbox::Column::Status,
                Expr::value(MailStatus::Failed.as_str()),
            ),
        };
        update
            .filter(mail_outbox::Column::MessageId.eq(mail.message_id()))
            .filter(pending())
            .exec(&self.db)
            .await
            .map_err(internal)?;
        Ok(())
    }
}

/// Marks the pending `mail` sent in `txn` and enqueues its `NotificationSent` there; `false`
/// if it was not pending.
async fn mark_sent(
    txn: &DatabaseTransaction,
    mail: &Mail,
    channel: &'static str,
    at: i64,
) -> Result<bool, NotificationError> {
    let marked = mail_outbox::Entity::update_many()
        .col_expr(
            mail_outbox::Column::Status,
            Expr::value(MailStatus::Sent.as_str()),
        )
        .col_expr(mail_outbox::Column::SentAt, Expr::value(at))
        .col_expr(mail_outbox::Column::Channel, Expr::value(channel))
        .col_expr(
            mail_outbox::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            mail_outbox::Column::Attempts,
            Expr::col(mail_outbox::Column::Attempts).add(1),
        )
        .filter(mail_outbox::Column::MessageId.eq(mail.message_id()))
        .filter(pending())
        .exec(txn)
        .await
        .map_err(internal)?;
    if marked.rows_affected == 0 {
        return Ok(false);
    }
    let row = notification::Entity::find_by_id(mail.notification_id.clone())
        .one(txn)
        .await
        .map_err(internal)?;
    // The mail and its notification were written in one transaction: the row is there.
    match row {
        Some(row) => {
            let sent = events::notification_sent(&to_notification(row)?, channel, at);
            outbox::enqueue(txn, &sent).await.map_err(internal)?;
        }
        None => {
            tracing::warn!(notification_id = %mail.notification_id, "mail sent for a notification that is gone; nothing announced");
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use polyshop_platform::db;
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;
    use crate::{
        app::EventStore,
        domain::{Notification, NotificationKind},
        store::{MIGRATIONS, TxnEventStore},
    };

    async fn database() -> DatabaseConnection {
        let conn = db::connect_url("sqlite::memory:", "notification")
            .await
            .expect("sqlite");
        db::migrate(&conn, &[MIGRATIONS, outbox::MIGRATIONS].concat())
            .await
            .expect("migrate");
        conn
    }

    fn mail() -> Mail {
        Mail {
            notification_id: "n1".into(),
            user_id: "u1".into(),
            to_email: "ada@example.com".into(),
            to_name: "Ada".into(),
            subject: "Welcome to Polyshop".into(),
            body: "Hello".into(),
        }
    }

    /// The notification and its mail, committed as the consumer does.
    async fn record(conn: &DatabaseConnection) {
        let txn = conn.begin().await.expect("begin");
        let store = TxnEventStore::new(&txn);
        let notification = Notification {
            id: "n1".into(),
            user_id: "u1".into(),
            kind: NotificationKind::Welcome,
            title: "Welcome to Polyshop".into(),
            body: "Hello".into(),
            source_event_id: "e1".into(),
            created_at: 1,
            read_at: None,
        };
        assert!(store.insert(&notification).await.expect("insert"));
        assert!(store.queue_mail(&mail(), 10).await.expect("queue"));
        assert!(
            !store
                .queue_mail(&mail(), 10)
                .await
                .expect("same Message-ID")
        );
        txn.commit().await.expect("commit");
    }

    #[tokio::test]
    async fn a_mail_is_claimed_retried_and_sent_once_with_its_event() {
        let conn = database().await;
        record(&conn).await;
        let outbox = SeaMailOutbox::new(conn.clone(), OutboxSignal::new());
        assert!(outbox.due(9, 10).await.expect("due").is_empty(), "not yet");
        let due = outbox.due(10, 10).await.expect("due");
        assert_eq!(
            due,
            [QueuedMail {
                mail: mail(),
                attempts: 0
            }]
        );

        let id = mail().message_id();
        let ids = [id.clone()];
        assert_eq!(outbox.claim(&ids, 10, 70).await.expect("claim"), ids);
        assert!(
            outbox
                .claim(&ids, 10, 70)
                .await
                .expect("claimed already")
                .is_empty()
        );
        assert!(outbox.due(69, 10).await.expect("due").is_empty(), "claimed");
        outbox
            .failed(&mail(), 1, NextAttempt::At(20), "451 later")
            .await
            .expect("failed");
        let due = outbox.due(20, 10).await.expect("due");
        assert_eq!(due[0].attempts, 1);

        assert_eq!(outbox.claim(&ids, 20, 80).await.expect("claim again"), ids);
        outbox.sent(&[&mail()], "smtp", 21).await.expect("sent");
        outbox
            .sent(&[&mail()], "smtp", 22)
            .await
            .expect("sent twice");
        assert!(outbox.due(i64::MAX, 10).await.expect("due").is_empty());
        assert!(
            outbox
                .claim(&ids, i64::MAX, i64::MAX)
                .await
                .expect("sent")
                .is_empty()
        );
        assert_eq!(
            outbox::pending(&conn).await.expect("events"),
            1,
            "one NotificationSent"
        );
        let row = mail_outbox::Entity::find_by_id(id)
            .one(&conn)
            .await
            .expect("row");
        let row = row.expect("kept");
        assert_eq!(row.status, "sent");
        assert_eq!((row.attempts, row.sent_at), (2, Some(21)));
        assert_eq!(row.channel.as_deref(), Some("smtp"));
    }

    #[tokio::test]
    async fn a_mail_given_up_is_failed_and_never_due_again() {
        let conn = database().await;
        record(&conn).await;
        let outbox = SeaMailOutbox::new(conn.clone(), OutboxSignal::new());
        let id = mail().message_id();
        assert_eq!(
            outbox
                .claim(std::slice::from_ref(&id), 10, 70)
                .await
                .expect("claim")
                .len(),
            1
        );
        outbox
            .failed(&mail(), 36, NextAttempt::GiveUp, "550 no such user")
            .await
            .expect("failed");
        assert!(outbox.due(i64::MAX, 10).await.expect("due").is_empty());
        let row = mail_outbox::Entity::find_by_id(id)
            .one(&conn)
            .await
            .expect("row");
        assert_eq!(row.expect("kept").status, "failed");
        assert_eq!(outbox::pending(&conn).await.expect("events"), 0);
    }

    #[tokio::test]
    async fn mail_of_the_former_mailbox_table_is_kept_as_sent() {
        let conn = db::connect_url("sqlite::memory:", "notification")
            .await
            .expect("sqlite");
        db::migrate(&conn, &MIGRATIONS[..1])
            .await
            .expect("version 1");
        conn.execute_unprepared(
            "INSERT INTO mailbox (notification_id, user_id, mail_to, mail_from, subject, body,
               created_at) VALUES ('n0', 'u1', 'ada@example.com', 'shop', 'Hi', 'Hello', 5)",
        )
        .await
        .expect("old mail");
        db::migrate(&conn, MIGRATIONS).await.expect("version 2");
        let row = mail_outbox::Entity::find_by_id("<n0@polyshop.local>".to_owned())
            .one(&conn)
            .await
            .expect("row")
            .expect("carried over");
        assert_eq!((row.status.as_str(), row.sent_at), ("sent", Some(5)));
        let outbox = SeaMailOutbox::new(conn.clone(), OutboxSignal::new());
        assert!(outbox.due(i64::MAX, 10).await.expect("due").is_empty());
        let gone = conn
            .query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT name FROM sqlite_master WHERE name = 'mailbox'",
            ))
            .await
            .expect("query");
        assert!(gone.is_none(), "mailbox table dropped");
    }
}
