//! [`SeaUserRepository`]: the user repository over sea-orm (SQLite or PostgreSQL).

use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::entities::{address, user};
use crate::{
    app::{NewUser, UserRepository},
    domain::{Address, Role, User, UserError, UserStatus, unique_key},
};

/// The user repository over a sea-orm connection.
#[derive(Debug, Clone)]
pub struct SeaUserRepository {
    db: DatabaseConnection,
}

impl SeaUserRepository {
    /// A repository over `db` (already migrated).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
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

impl SeaUserRepository {
    async fn addresses_of(&self, user_id: &str) -> Result<Vec<Address>, UserError> {
        Ok(address::Entity::find()
            .filter(address::Column::UserId.eq(user_id))
            .order_by_asc(address::Column::Id)
            .all(&self.db)
            .await
            .map_err(internal)?
            .into_iter()
            .map(to_address)
            .collect())
    }

    async fn with_addresses(&self, row: user::Model) -> Result<User, UserError> {
        let addresses = self.addresses_of(&row.id).await?;
        Ok(to_user(row, addresses))
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
        let inserted = row
            .insert(&self.db)
            .await
            .map_err(|e| taken(&e).unwrap_or_else(|| internal(e)))?;
        Ok(to_user(inserted, Vec::new()))
    }

    async fn find(&self, id: &str) -> Result<Option<User>, UserError> {
        match user::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await
            .map_err(internal)?
        {
            Some(row) => Ok(Some(self.with_addresses(row).await?)),
            None => Ok(None),
        }
    }

    async fn find_for_login(&self, login: &str) -> Result<Option<(User, String)>, UserError> {
        let key = unique_key(login);
        let row = user::Entity::find()
            .filter(
                Condition::any()
                    .add(user::Column::UsernameKey.eq(key.clone()))
                    .add(user::Column::EmailKey.eq(key)),
            )
            .one(&self.db)
            .await
            .map_err(internal)?;
        match row {
            Some(row) => {
                let hash = row.password_hash.clone();
                Ok(Some((self.with_addresses(row).await?, hash)))
            }
            None => Ok(None),
        }
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, UserError> {
        let row = user::Entity::find()
            .filter(user::Column::UsernameKey.eq(unique_key(username)))
            .one(&self.db)
            .await
            .map_err(internal)?;
        match row {
            Some(row) => Ok(Some(self.with_addresses(row).await?)),
            None => Ok(None),
        }
    }

    async fn update_profile(
        &self,
        id: &str,
        display_name: Option<String>,
        email: Option<String>,
    ) -> Result<User, UserError> {
        let row = user::Entity::find_by_id(id.to_owned())
            .one(&self.db)
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
            .update(&self.db)
            .await
            .map_err(|e| taken(&e).unwrap_or_else(|| internal(e)))?;
        self.with_addresses(row).await
    }

    async fn set_status(
        &self,
        id: &str,
        status: UserStatus,
    ) -> Result<(UserStatus, User), UserError> {
        let row = user::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await
            .map_err(internal)?
            .ok_or(UserError::NotFound)?;
        let previous = UserStatus::parse(&row.status).unwrap_or(UserStatus::Suspended);
        let mut active: user::ActiveModel = row.into();
        active.status = Set(status.as_str().into());
        active.updated_at = Set(polyshop_platform::now_millis());
        let row = active.update(&self.db).await.map_err(internal)?;
        Ok((previous, self.with_addresses(row).await?))
    }

    async fn add_address(&self, user_id: &str, address: Address) -> Result<Address, UserError> {
        let txn = self.db.begin().await.map_err(internal)?;
        if user::Entity::find_by_id(user_id.to_owned())
            .one(&txn)
            .await
            .map_err(internal)?
            .is_none()
        {
            return Err(UserError::NotFound);
        }
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
        txn.commit().await.map_err(internal)?;
        Ok(to_address(row))
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
        let deleted = user::Entity::delete_by_id(id.to_owned())
            .exec(&txn)
            .await
            .map_err(internal)?;
        txn.commit().await.map_err(internal)?;
        Ok(deleted.rows_affected > 0)
    }
}
