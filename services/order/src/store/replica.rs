//! A local copy of user accounts' status, fed by user events, used when the user service is
//! unavailable (data replication).

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use super::{exec, one};

/// The `user_replica` table.
#[derive(Debug, Clone)]
pub struct UserReplica {
    db: DatabaseConnection,
}

impl UserReplica {
    /// The replica in `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Records `status` (`active`, `inactive`, `suspended`, `deleted`) as of `at`; older
    /// news never overwrites newer.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn upsert<C: ConnectionTrait>(
        conn: &C,
        user_id: &str,
        status: &str,
        at: i64,
    ) -> Result<(), DbErr> {
        let updated = exec(
            conn,
            "UPDATE user_replica SET status = ?, updated_at = ? WHERE user_id = ? AND updated_at <= ?",
            vec![status.into(), at.into(), user_id.into(), at.into()],
        )
        .await?;
        if updated == 0 {
            exec(
                conn,
                "INSERT INTO user_replica (user_id, status, updated_at) VALUES (?, ?, ?) ON CONFLICT (user_id) DO NOTHING",
                vec![user_id.into(), status.into(), at.into()],
            )
            .await?;
        }
        Ok(())
    }

    /// The replicated status of a user, if known.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn status(&self, user_id: &str) -> Result<Option<String>, DbErr> {
        Ok(
            match one(
                &self.db,
                "SELECT status FROM user_replica WHERE user_id = ?",
                vec![user_id.into()],
            )
            .await?
            {
                Some(row) => Some(row.try_get("", "status")?),
                None => None,
            },
        )
    }
}
