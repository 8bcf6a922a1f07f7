//! [`SeaUserRepository`]: the user repository over sea-orm (SQLite or PostgreSQL).

use polyshop_platform::events::{
    OutgoingEvent,
    outbox::{self, OutboxSignal},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set,
    TransactionTrait,
};

use super::{
    entities::{address, user},
    refresh,
};
use crate::{
    app::{NewUser, UserRepository},
    domain::{Address, Role, User, UserError, UserStatus, unique_key},
    events,
};

/// The user repository over a sea-orm connection. Every change writes its domain event to
/// the outbox in the same transaction.
#[derive(Debug, Clone)]
pub struct SeaUserRepository {
    db: DatabaseConnection,
    outbox: OutboxSignal,
}

impl SeaUserRepository {
    /// A repository over `db` (already migrated), waking `outbox` after commits.
    pub fn new(db: DatabaseConnection, outbox: OutboxSignal) -> Self {
        Self { db, outbox }
    }

    /// Writes `event`, commits, and wakes the relay.
    async fn commit_with(
        &self,
        txn: DatabaseTransaction,
        event: OutgoingEvent,
    ) -> Result<(), UserError> {
        outbox::enqueue(&txn, &event).await.map_err(internal)?;
        txn.commit().await.map_err(internal)?;
        self.outbox.wake();
        Ok(())
    }
}

fn internal(e: DbErr) -> UserError {
    UserError::Internal(Box::new(e))
}

fn to_address(row: address::Model) -> Address {
    Address {
        id: row.id,
        recipient: row.recipient,
        line1: row.line1,
        line2: row.line2,
        city: row.city,
        region: row.region,
        postal_code: row.postal_code,
        country_code: row.country_code,
    }
}

fn to_user(row: user::Model, addresses: Vec<Address>) -> User {
    let mut roles: Vec<Role> = row.roles.split(',').filter_map(Role::parse).collect();
    roles.sort();
    User {
        id: row.id,
        username: row.username,
        email: row.email,
        display_name: row.display_name,
        // An unknown stored status fails closed.
        status: UserStatus::parse(&row.status).unwrap_or(UserStatus::Suspended),
        roles,
        addresses,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn roles_column(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A unique violation on insert or update: which key collided.
fn taken(e: &DbErr) -> Option<UserError> {
    if !polyshop_platform::db::is_unique_violation(e) {
        return None;
    }
    let text = e.to_string();
    Some(if text.contains("email") {
        UserError::EmailTaken
    } else {
        UserError::UsernameTaken
    })
}

/// The value of `result`, or: roll `txn` back now (SQLite's one connection is freed at once)
/// and return the error.
macro_rules! or_rollback {
    ($txn:ident, $result:expr) => {
        match $result {
            Ok(value) => value,
            Err(e) => {
                let _ = $txn.rollback().await;
                return Err(e);
            }
        }
    };
}

// Reads take the connection to use: inside a transaction they must go through it (SQLite has
// a single pooled connection, which the transaction holds).
async fn addresses_of<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> Result<Vec<Address>, UserError> {
    Ok(address::Entity::find()
        .filter(address::Column::UserId.eq(user_id))
        .order_by_asc(address::Column::Id)
        .all(conn)
        .await
        .map_err(internal)?
        .into_iter()
        .map(to_address)
        .collect())
}

async fn with_addresses<C: ConnectionTrait>(conn: &C, row: user::Model) -> Result<User, UserError> {
    let addresses = addresses_of(conn, &row.id).await?;
    Ok(to_user(row, addresses))
}

impl SeaUserRepository {
    async fn with_addresses(&self, row: user::Model) -> Result<User, UserError> {
        with_addresses(&self.db, row).await
    }

    /// The first user `query` matches, with its addresses and password hash, read in one
    /// statement (a LEFT JOIN): GetUser is on every order's path, and each statement costs a
    /// hand-off to the connection's thread.
    async fn one_with_addresses(
        &self,
        query: Select<user::Entity>,
    ) -> Result<Option<(User, String)>, UserError> {
        let found = query
            .find_with_related(address::Entity)
            .order_by_asc(address::Column::Id)
            .all(&self.db)
            .await
            .map_err(internal)?;
        Ok(found.into_iter().next().map(|(row, addresses)| {
            let hash = row.password_hash.clone();
            let addresses = addresses.into_iter().map(to_address).collect();
            (to_user(row, addresses), hash)
        }))
    }
}

impl UserRepository for SeaUserRepository {
    async fn insert(&self, new: NewUser) -> Result<User, UserError> {
        let now = polyshop_platform::now_millis();
        let row = user::ActiveModel {
            id: Set(new.id),
            username_key: Set(unique_key(&new.username)),
            username: Set(new.username),
            email_key: Set(unique_key(&new.email)),
            email: Set(new.email),
            display_name: Set(new.display_name),
            password_hash: Set(new.password_hash),
            status: Set(UserStatus::Active.as_str().into()),
            roles: Set(roles_column(&new.roles)),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let txn = self.db.begin().await.map_err(internal)?;
        let inserted = match row.insert(&txn).await {
            Ok(row) => row,
            Err(e) => {
                let _ = txn.rollback().await;
                return Err(taken(&e).unwrap_or_else(|| internal(e)));
            }
        };
        let user = to_user(inserted, Vec::new());
        self.commit_with(txn, events::registered(&user)).await?;
        Ok(user)
    }

    async fn find(&self, id: &str) -> Result<Option<User>, UserError> {
        let query = user::Entity::find_by_id(id.to_owned());
        Ok(self.one_with_addresses(query).await?.map(|(user, _)| user))
    }

    async fn find_for_login(&self, login: &str) -> Result<Option<(User, String)>, UserError> {
        let key = unique_key(login);
        let query = user::Entity::find().filter(
            Condition::any()
                .add(user::Column::UsernameKey.eq(key.clone()))
                .add(user::Column::EmailKey.eq(key)),
        );
        self.one_with_addresses(query).await
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, UserError> {
        let query = user::Entity::find().filter(user::Column::UsernameKey.eq(unique_key(username)));
        Ok(self.one_with_addresses(query).await?.map(|(user, _)| user))
    }

    async fn update_profile(
        &self,
        id: &str,
        display_name: Option<String>,
        email: Option<String>,
    ) -> Result<User, UserError> {
        let txn = self.db.begin().await.map_err(internal)?;
        let changed = async {
            let row = user::Entity::find_by_id(id.to_owned())
                .one(&txn)
                .await
                .map_err(internal)?
                .ok_or(UserError::NotFound)?;
            let mut active: user::ActiveModel = row.into();
            if let Some(name) = display_name {
                active.display_name = Set(name);
            }
            if let Some(email) = email {
                active.email_key = Set(unique_key(&email));
                active.email = Set(email);
            }
            active.updated_at = Set(polyshop_platform::now_millis());
            let row = active
                .update(&txn)
                .await
                .map_err(|e| taken(&e).unwrap_or_else(|| internal(e)))?;
            with_addresses(&txn, row).await
        }
        .await;
        let user = or_rollback!(txn, changed);
        self.commit_with(txn, events::updated(&user)).await?;
        Ok(user)
    }

    async fn set_status(
        &self,
        id: &str,
        status: UserStatus,
    ) -> Result<(UserStatus, User), UserError> {
        let txn = self.db.begin().await.map_err(internal)?;
        let changed = async {
            let row = user::Entity::find_by_id(id.to_owned())
                .one(&txn)
                .await
                .map_err(internal)?
                .ok_or(UserError::NotFound)?;
            let previous = UserStatus::parse(&row.status).unwrap_or(UserStatus::Suspended);
            let now = polyshop_platform::now_millis();
            let mut active: user::ActiveModel = row.into();
            active.status = Set(status.as_str().into());
            active.updated_at = Set(now);
            let row = active.update(&txn).await.map_err(internal)?;
            // An account that may not sign in may not stay signed in either.
            if status != UserStatus::Active {
                refresh::revoke_user(&txn, id, now)
                    .await
                    .map_err(internal)?;
            }
            Ok((previous, with_addresses(&txn, row).await?))
        }
        .await;
        let (previous, user) = or_rollback!(txn, changed);
        self.commit_with(txn, events::status_changed(&user.id, previous, status))
            .await?;
        Ok((previous, user))
    }

    async fn add_address(&self, user_id: &str, address: Address) -> Result<Address, UserError> {
        let txn = self.db.begin().await.map_err(internal)?;
        let added = async {
            let owner = user::Entity::find_by_id(user_id.to_owned())
                .one(&txn)
                .await
                .map_err(internal)?
                .ok_or(UserError::NotFound)?;
            let row = address::ActiveModel {
                id: Set(address.id),
                user_id: Set(user_id.to_owned()),
                recipient: Set(address.recipient),
                line1: Set(address.line1),
                line2: Set(address.line2),
                city: Set(address.city),
                region: Set(address.region),
                postal_code: Set(address.postal_code),
                country_code: Set(address.country_code),
                created_at: Set(polyshop_platform::now_millis()),
            }
            .insert(&txn)
            .await
            .map_err(internal)?;
            Ok((to_address(row), with_addresses(&txn, owner).await?))
        }
        .await;
        let (address, user) = or_rollback!(txn, added);
        self.commit_with(txn, events::updated(&user)).await?;
        Ok(address)
    }

    async fn list(&self, after: Option<String>, limit: u64) -> Result<Vec<User>, UserError> {
        let mut query = user::Entity::find()
            .order_by_asc(user::Column::Id)
            .limit(limit);
        if let Some(after) = after {
            query = query.filter(user::Column::Id.gt(after));
        }
        let rows = query.all(&self.db).await.map_err(internal)?;
        let mut users = Vec::with_capacity(rows.len());
        for row in rows {
            users.push(self.with_addresses(row).await?);
        }
        Ok(users)
    }

    async fn delete(&self, id: &str) -> Result<bool, UserError> {
        let txn = self.db.begin().await.map_err(internal)?;
        address::Entity::delete_many()
            .filter(address::Column::UserId.eq(id))
            .exec(&txn)
            .await
            .map_err(internal)?;
        refresh::delete_user(&txn, id).await.map_err(internal)?;
        let deleted = user::Entity::delete_by_id(id.to_owned())
            .exec(&txn)
            .await
            .map_err(internal)?;
        if deleted.rows_affected == 0 {
            txn.rollback().await.map_err(internal)?;
            return Ok(false);
        }
        self.commit_with(txn, events::deleted(id)).await?;
        Ok(true)
    }
}
