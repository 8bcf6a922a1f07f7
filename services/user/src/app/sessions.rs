//! Sessions: the tokens a sign-in gets, their refresh with rotation and reuse detection, and
//! logout. An access token lives at most 15 minutes (`auth.token_ttl_secs`); a refresh token
//! (`user.refresh_token_ttl_secs`) is single use: each refresh consumes it and returns the
//! next of its family, and presenting a consumed one revokes the family.

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use polyshop_platform::{auth::TokenIssuer, status::Violations};
use rand::RngCore;

use super::{RefreshTokenRepository, UserRepository};
use crate::domain::{RefreshRejection, RefreshToken, User, UserError, refresh_token_hash};

/// A signed-in user's tokens.
#[derive(Debug, Clone)]
pub struct Session {
    /// The signed access token.
    pub access_token: String,
    /// Its expiry, seconds since the epoch.
    pub expires_at: u64,
    /// The refresh token, as the client gets it (only its hash is stored).
    pub refresh_token: String,
    /// Its expiry, epoch ms.
    pub refresh_expires_at: i64,
    /// The user.
    pub user: User,
}

/// Issues sessions: access tokens with `issuer`, refresh tokens kept in `store` for
/// `refresh_ttl`.
#[derive(Debug)]
pub struct Sessions<T> {
    /// Signs access tokens.
    pub issuer: Arc<TokenIssuer>,
    /// Where refresh tokens are kept.
    pub store: T,
    /// Lifetime of a refresh token.
    pub refresh_ttl: Duration,
}

/// 256 random bits from the OS, base64url without padding (43 characters).
fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn presented(token: &str) -> Result<&str, UserError> {
    let token = token.trim();
    // The contract's min_len lets a whitespace-only token through.
    if token.is_empty() {
        let mut v = Violations::new();
        v.add("refresh_token", "must not be empty");
        v.into_result()?;
    }
    Ok(token)
}

impl<T: RefreshTokenRepository> Sessions<T> {
    /// Signs `user` in: an access token and the first refresh token of a new family.
    ///
    /// # Errors
    /// `Internal` when signing or storing fails.
    pub async fn start(&self, user: User) -> Result<Session, UserError> {
        let now = polyshop_platform::now_millis();
        let (session, token) = self.issue(user, polyshop_platform::new_id(), now)?;
        self.store.insert(token).await?;
        Ok(session)
    }

    /// A session for `user` whose refresh token joins `family_id`, and that token's record.
    fn issue(
        &self,
        user: User,
        family_id: String,
        now: i64,
    ) -> Result<(Session, RefreshToken), UserError> {
        let (access_token, expires_at) = self
            .issuer
            .issue(&user.id, user.role_names())
            .map_err(|e| UserError::Internal(Box::new(e)))?;
        let refresh_token = new_refresh_token();
        let ttl = i64::try_from(self.refresh_ttl.as_millis()).unwrap_or(i64::MAX);
        let refresh_expires_at = now.saturating_add(ttl);
        let record = RefreshToken {
            hash: refresh_token_hash(&refresh_token),
            family_id,
            user_id: user.id.clone(),
            created_at: now,
            expires_at: refresh_expires_at,
            used_at: None,
            revoked_at: None,
        };
        let session = Session {
            access_token,
            expires_at,
            refresh_token,
            refresh_expires_at,
            user,
        };
        Ok((session, record))
    }

    /// Revokes `family_id` because of `why`, logged for the audit trail.
    async fn revoke(&self, stored: &RefreshToken, now: i64, why: &str) -> Result<(), UserError> {
        let revoked = self.store.revoke_family(&stored.family_id, now).await?;
        tracing::warn!(
            user_id = %stored.user_id,
            family_id = %stored.family_id,
            revoked,
            why,
            "sign-in revoked"
        );
        Ok(())
    }
}

/// Exchanges the refresh token `token` for a new session of the same sign-in; the token is
/// consumed. A token consumed before revokes its whole family (reuse detection), and so does
/// a refresh for an account that is no longer active.
///
/// # Errors
/// `Invalid` for an empty token, `RefreshRejected` for an unknown, expired, revoked or reused
/// one, `NotActive` when the account is not active, `Internal`.
pub async fn refresh<R: UserRepository, T: RefreshTokenRepository>(
    repo: &R,
    sessions: &Sessions<T>,
    token: &str,
) -> Result<Session, UserError> {
    let hash = refresh_token_hash(presented(token)?);
    let now = polyshop_platform::now_millis();
    let stored = sessions
        .store
        .find(&hash)
        .await?
        .ok_or(UserError::RefreshRejected(RefreshRejection::Unknown))?;
    if let Err(why) = stored.check(now) {
        if why == RefreshRejection::Reused {
            sessions
                .revoke(&stored, now, "a consumed refresh token was presented again")
                .await?;
        }
        return Err(UserError::RefreshRejected(why));
    }
    let user = match repo.find(&stored.user_id).await? {
        Some(user) if user.is_active() => user,
        Some(user) => {
            sessions
                .revoke(&stored, now, "the account is not active")
                .await?;
            return Err(UserError::NotActive(user.status.as_str()));
        }
        None => {
            sessions.revoke(&stored, now, "the account is gone").await?;
            return Err(UserError::RefreshRejected(RefreshRejection::Revoked));
        }
    };
    let (session, next) = sessions.issue(user, stored.family_id.clone(), now)?;
    if !sessions.store.rotate(&hash, now, next).await? {
        // Another refresh with the same token got there first: one of the two is a replay.
        sessions
            .revoke(&stored, now, "a refresh token was presented twice at once")
            .await?;
        return Err(UserError::RefreshRejected(RefreshRejection::Reused));
    }
    Ok(session)
}

/// Ends the sign-in of the refresh token `token`: its whole family is revoked. Idempotent:
/// an unknown or already revoked token is signed out already.
///
/// # Errors
/// `Invalid` for an empty token, `Internal`.
pub async fn logout<T: RefreshTokenRepository>(
    sessions: &Sessions<T>,
    token: &str,
) -> Result<(), UserError> {
    let hash = refresh_token_hash(presented(token)?);
    if let Some(stored) = sessions.store.find(&hash).await?
        && stored.revoked_at.is_none()
    {
        let now = polyshop_platform::now_millis();
        sessions.store.revoke_family(&stored.family_id, now).await?;
        tracing::info!(user_id = %stored.user_id, family_id = %stored.family_id, "signed out");
    }
    Ok(())
}
