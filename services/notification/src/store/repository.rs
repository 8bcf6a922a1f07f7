//! [`SeaNotificationRepository`]: the owner's reads and mark-read over sea-orm (SQLite or
//! PostgreSQL).

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};

use super::{entities::notification, internal, to_notification};
use crate::{
    app::NotificationRepository,
    domain::{Notification, NotificationError},
};

/// The notification repository over a sea-orm connection.
#[derive(Debug, Clone)]
pub struct SeaNotificationRepository {
    db: DatabaseConnection,
}

impl SeaNotificationRepository {
    /// A repository over `db` (already migrated).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

impl NotificationRepository for SeaNotificationRepository {
    async fn list(
        &self,
        user_id: &str,
        unread_only: bool,
        before: Option<String>,
        limit: u64,
    ) -> Result<Vec<Notification>, NotificationError> {
        let mut query = notification::Entity::find()
            .filter(notification::Column::UserId.eq(user_id))
            .order_by_desc(notification::Column::Id)
            .limit(limit);
        if unread_only {
            query = query.filter(notification::Column::ReadAt.is_null());
        }
        if let Some(before) = before {
            query = query.filter(notification::Column::Id.lt(before));
        }
        let rows = query.all(&self.db).await.map_err(internal)?;
        rows.into_iter().map(to_notification).collect()
    }

    async fn unread_count(&self, user_id: &str) -> Result<u64, NotificationError> {
        notification::Entity::find()
            .filter(notification::Column::UserId.eq(user_id))
            .filter(notification::Column::ReadAt.is_null())
            .count(&self.db)
            .await
            .map_err(internal)
    }

    async fn mark_read(
        &self,
        user_id: &str,
        id: &str,
        at: i64,
    ) -> Result<Option<Notification>, NotificationError> {
        // One conditional UPDATE: concurrent calls cannot both set read_at.
        notification::Entity::update_many()
            .col_expr(notification::Column::ReadAt, Expr::value(at))
            .filter(notification::Column::Id.eq(id))
            .filter(notification::Column::UserId.eq(user_id))
            .filter(notification::Column::ReadAt.is_null())
            .exec(&self.db)
            .await
            .map_err(internal)?;
        notification::Entity::find_by_id(id.to_owned())
            .filter(notification::Column::UserId.eq(user_id))
            .one(&self.db)
            .await
            .map_err(internal)?
            .map(to_notification)
            .transpose()
    }
}
