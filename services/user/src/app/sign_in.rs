//! Registration and login.

use polyshop_platform::status::Violations;

use super::{Hashing, NewUser, RefreshTokenRepository, Session, Sessions, UserRepository};
use crate::domain::{
    Role, User, UserError, check_display_name, check_email, check_password, check_username,
};

/// What Register asks for.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Username.
    pub username: String,
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
    /// Display name; the username when empty.
    pub display_name: String,
}

/// Creates a customer account.
///
/// # Errors
/// `Invalid` with every field violation, `UsernameTaken`, `EmailTaken`, `Busy` when hashing
/// is saturated, `Internal`.
pub async fn register<R: UserRepository>(
    repo: &R,
    hashing: &Hashing,
    reg: Registration,
) -> Result<User, UserError> {
    create(repo, hashing, reg, vec![Role::Customer]).await
}

async fn create<R: UserRepository>(
    repo: &R,
    hashing: &Hashing,
    reg: Registration,
    roles: Vec<Role>,
) -> Result<User, UserError> {
    let username = reg.username.trim().to_owned();
    let email = reg.email.trim().to_owned();
    let mut v = Violations::new();
    // All kept, because `ensure_admin` creates an account from settings, which no layer
    // checks; and the domain trims first, its email check is stricter than the contract's in
    // places (a single-label domain), and a password must not be the username or email.
    v.check("username", check_username(&username));
    v.check("email", check_email(&email));
    v.check("password", check_password(&reg.password, &username, &email));
    v.check("display_name", check_display_name(&reg.display_name));
    v.into_result()?;
    let display_name = match reg.display_name.trim() {
        "" => username.clone(),
        name => name.to_owned(),
    };
    let password_hash = hashing.hash(reg.password).await?;
    repo.insert(NewUser {
        id: polyshop_platform::new_id(),
        username,
        email,
        display_name,
        password_hash,
        roles,
    })
    .await
}

/// Creates the configured admin account unless one with that username exists.
///
/// # Errors
/// As [`register`].
pub async fn ensure_admin<R: UserRepository>(
    repo: &R,
    hashing: &Hashing,
    username: &str,
    email: &str,
    password: &str,
) -> Result<User, UserError> {
    if let Some(existing) = repo.find_by_username(username).await? {
        return Ok(existing);
    }
    let reg = Registration {
        username: username.into(),
        email: email.into(),
        password: password.into(),
        display_name: "Administrator".into(),
    };
    create(repo, hashing, reg, vec![Role::Customer, Role::Admin]).await
}

/// Checks credentials and starts a session: an access token and a refresh token.
///
/// # Errors
/// `InvalidCredentials` for an unknown login or wrong password (the same error, in about the
/// same time), `NotActive` for an inactive or suspended account, `Busy` when hashing is
/// saturated, `Internal`.
pub async fn login<R: UserRepository, T: RefreshTokenRepository>(
    repo: &R,
    hashing: &Hashing,
    sessions: &Sessions<T>,
    login: &str,
    password: &str,
) -> Result<Session, UserError> {
    let found = repo.find_for_login(login.trim()).await?;
    let (user, hash) = match found {
        Some(pair) => pair,
        None => {
            hashing
                .verify(password.to_owned(), hashing.decoy().await?)
                .await?;
            return Err(UserError::InvalidCredentials);
        }
    };
    if !hashing.verify(password.to_owned(), hash).await? {
        return Err(UserError::InvalidCredentials);
    }
    if !user.is_active() {
        return Err(UserError::NotActive(user.status.as_str()));
    }
    sessions.start(user).await
}
