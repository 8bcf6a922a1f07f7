//! sea-orm entities of the notification database.

/// The `notifications` table.
pub mod notification {
    use sea_orm::entity::prelude::*;

    /// One notification row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notifications")]
    pub struct Model {
        /// UUIDv7.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Owner.
        pub user_id: String,
        /// `NotificationKind::as_str`.
        pub kind: String,
        /// Subject line.
        pub title: String,
        /// Text.
        pub body: String,
        /// The event it came from.
        pub source_event_id: String,
        /// Epoch ms.
        pub created_at: i64,
        /// Epoch ms of the first mark-read.
        pub read_at: Option<i64>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `recipients` table: the directory kept from user events.
pub mod recipient {
    use sea_orm::entity::prelude::*;

    /// One recipient row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "recipients")]
    pub struct Model {
        /// The user.
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        /// Address.
        pub email: String,
        /// Name.
        pub display_name: String,
        /// Epoch ms of the user's last change.
        pub updated_at: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `mail_outbox` table: mail recorded by the consumer, sent after its commit.
pub mod mail_outbox {
    use sea_orm::entity::prelude::*;

    /// One mail row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mail_outbox")]
    pub struct Model {
        /// `<notification id@polyshop.local>`; one mail each.
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        /// The notification mailed.
        pub notification_id: String,
        /// Recipient's user id.
        pub user_id: String,
        /// Recipient's address.
        pub to_email: String,
        /// Recipient's name (may be empty).
        pub to_name: String,
        /// Subject.
        pub subject: String,
        /// Body.
        pub body: String,
        /// `MailStatus::as_str`.
        pub status: String,
        /// Attempts made (failed ones, plus the one that sent it).
        pub attempts: i32,
        /// Epoch ms before which it is not sent (a retry's delay, a dispatcher's claim).
        pub next_attempt_at: i64,
        /// Why the last attempt failed.
        pub last_error: Option<String>,
        /// The sender's channel, once sent.
        pub channel: Option<String>,
        /// Epoch ms it was recorded.
        pub created_at: i64,
        /// Epoch ms it was sent.
        pub sent_at: Option<i64>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
