//! Use cases of the user context, over the [`UserRepository`] port. One file per use case
//! family; each enforces the owner rule (a user acts on their own account unless admin).

mod accounts;
mod password;
mod sessions;
mod sign_in;

pub use accounts::*;
pub use password::{Hashing, RETRY_AFTER};
pub use sessions::*;
pub use sign_in::*;

use std::future::Future;

use crate::domain::{Address, RefreshToken, Role, User, UserError, UserStatus};

/// What registration stores.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// UUIDv7.
    pub id: String,
    /// Validated username.
    pub username: String,
    /// Validated email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Roles.
    pub roles: Vec<Role>,
}

/// Storage of accounts. Usernames and emails are unique case-insensitively: a duplicate
/// insert or update fails with `UsernameTaken` / `EmailTaken`.
pub trait UserRepository: Send + Sync + 'static {
    /// Stores a new active account.
    fn insert(&self, new: NewUser) -> impl Future<Output = Result<User, UserError>> + Send;
    /// The account with `id`.
    fn find(&self, id: &str) -> impl Future<Output = Result<Option<User>, UserError>> + Send;
    /// The account whose username or email is `login`, with its password hash.
    fn find_for_login(
        &self,
        login: &str,
    ) -> impl Future<Output = Result<Option<(User, String)>, UserError>> + Send;
    /// The account with this username.
    fn find_by_username(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<User>, UserError>> + Send;
    /// Changes the given profile fields.
    fn update_profile(
        &self,
        id: &str,
        display_name: Option<String>,
        email: Option<String>,
    ) -> impl Future<Output = Result<User, UserError>> + Send;
    /// Sets the status; returns the previous one and the account. Any status but active
    /// revokes every refresh token of the account in the same transaction.
    fn set_status(
        &self,
        id: &str,
        status: UserStatus,
    ) -> impl Future<Output = Result<(UserStatus, User), UserError>> + Send;
    /// Appends an address.
    fn add_address(
        &self,
        user_id: &str,
        address: Address,
    ) -> impl Future<Output = Result<Address, UserError>> + Send;
    /// Accounts with id greater than `after`, ascending.
    fn list(
        &self,
        after: Option<String>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<User>, UserError>> + Send;
    /// Deletes an account, its addresses and its refresh tokens; false if there was none.
    fn delete(&self, id: &str) -> impl Future<Output = Result<bool, UserError>> + Send;
}

/// Storage of refresh tokens, by the hash of the token.
pub trait RefreshTokenRepository: Send + Sync + 'static {
    /// Stores a new token.
    fn insert(&self, token: RefreshToken) -> impl Future<Output = Result<(), UserError>> + Send;
    /// The token whose hash is `hash`.
    fn find(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<RefreshToken>, UserError>> + Send;
    /// Consumes the token `hash` at `now` and stores `next`, atomically; false, with nothing
    /// changed, when the token was consumed or revoked already.
    fn rotate(
        &self,
        hash: &str,
        now: i64,
        next: RefreshToken,
    ) -> impl Future<Output = Result<bool, UserError>> + Send;
    /// Revokes, at `now`, every token of the family not revoked yet; returns how many.
    fn revoke_family(
        &self,
        family_id: &str,
        now: i64,
    ) -> impl Future<Output = Result<u64, UserError>> + Send;
}
