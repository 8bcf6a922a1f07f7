//! [`SeaRefreshTokens`]: refresh tokens over sea-orm, and the statements that revoke or drop
//! a user's tokens inside the transaction that suspends or deletes the user.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, Set, TransactionTrait, sea_query::Expr,
};

use super::entities::refresh_token;
use crate::{
    app::RefreshTokenRepository,
    domain::{RefreshToken, UserError},
};

/// Refresh tokens over a sea-orm connection (the user database, already migrated).
#[derive(Debug, Clone)]
pub struct SeaRefreshTokens {
    db: DatabaseConnection,
}

impl SeaRefreshTokens {
    /// Refresh tokens stored in `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn internal(e: DbErr) -> UserError {
    UserError::Internal(Box::new(e))
}

fn to_token(row: refresh_token::Model) -> RefreshToken {
    RefreshToken {
        hash: row.token_hash,
        family_id: row.family_id,
        user_id: row.user_id,
        created_at: row.created_at,
        expires_at: row.expires_at,
        used_at: row.used_at,
        revoked_at: row.revoked_at,
    }
}

fn row_of(token: RefreshToken) -> refresh_token::ActiveModel {
    refresh_token::ActiveModel {
        token_hash: Set(token.hash),
        family_id: Set(token.family_id),
        user_id: Set(token.user_id),
        created_at: Set(token.created_at),
        expires_at: Set(token.expires_at),
        used_at: Set(token.used_at),
        revoked_at: Set(token.revoked_at),
    }
}

/// Revokes, at `now`, every token of `user_id` not revoked yet (in the caller's transaction).
pub(super) async fn revoke_user<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    now: i64,
) -> Result<u64, DbErr> {
    let done = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(done.rows_affected)
}

/// Deletes every token of `user_id` (in the caller's transaction).
pub(super) async fn delete_user<C: ConnectionTrait>(conn: &C, user_id: &str) -> Result<(), DbErr> {
    refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    Ok(())
}

impl RefreshTokenRepository for SeaRefreshTokens {
    async fn insert(&self, token: RefreshToken) -> Result<(), UserError> {
        row_of(token).insert(&self.db).await.map_err(internal)?;
        Ok(())
    }

    async fn find(&self, hash: &str) -> Result<Option<RefreshToken>, UserError> {
        Ok(refresh_token::Entity::find_by_id(hash.to_owned())
            .one(&self.db)
            .await
            .map_err(internal)?
            .map(to_token))
    }

    async fn rotate(&self, hash: &str, now: i64, next: RefreshToken) -> Result<bool, UserError> {
        let txn = self.db.begin().await.map_err(internal)?;
        // Only a token neither consumed nor revoked is consumed: of two refreshes racing with
        // one token, exactly one gets here first.
        let consumed = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
            .filter(refresh_token::Column::TokenHash.eq(hash))
            .filter(refresh_token::Column::UsedAt.is_null())
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await;
        let consumed = match consumed {
            Ok(done) => done.rows_affected == 1,
            Err(e) => {
                let _ = txn.rollback().await;
                return Err(internal(e));
            }
        };
        if !consumed {
            txn.rollback().await.map_err(internal)?;
            return Ok(false);
        }
        if let Err(e) = row_of(next).insert(&txn).await {
            let _ = txn.rollback().await;
            return Err(internal(e));
        }
        txn.commit().await.map_err(internal)?;
        Ok(true)
    }

    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<u64, UserError> {
        let done = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
            .filter(refresh_token::Column::FamilyId.eq(family_id))
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(internal)?;
        Ok(done.rows_affected)
    }
}
