//! Access rules at the edge, from the contract's access option: PUBLIC passes (a valid token
//! still identifies the caller for rate limits), AUTHENTICATED needs a valid user token, ADMIN
//! the admin role. Tokens are verified through the user service's JWKS (EdDSA only, issuer,
//! audience and expiry checked; the verifier remembers verified tokens until they expire, so
//! a client's steady stream of requests pays one signature check). The token is forwarded
//! and the service checks again.
//!
//! When the edge has NATS it also follows the user events ([`RevokedUsers`]): the token of a
//! user suspended, deactivated or deleted is refused here with 401 "account is not active" a
//! moment after the user service commits the change, not only when the token expires.

use std::sync::Arc;

use http::HeaderMap;
use polyshop_platform::{
    auth::{AccountStatus, Principal, RevokedUsers, TokenError, UserTokenVerifier},
    contract::Access,
    discovery::Discovery,
    shutdown,
};
use tonic::Code;

use crate::errors::EdgeError;

/// Verifies bearer tokens and applies access rules.
pub struct EdgeAuth {
    verifier: UserTokenVerifier,
    /// Whether a verified token's user may still use it; every user may without it.
    accounts: Option<Arc<dyn AccountStatus>>,
    /// Stops following the user events when the edge goes (dropping it fires).
    _following: Option<shutdown::Trigger>,
}

impl std::fmt::Debug for EdgeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeAuth").finish_non_exhaustive()
    }
}

/// An `authorization` header that is not `Bearer <token>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedHeader;

/// The bearer token of a request: `Ok(None)` without an `authorization` header.
///
/// # Errors
/// [`MalformedHeader`] when the header is not `Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, MalformedHeader> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| MalformedHeader)?;
    let (scheme, token) = value.split_once(' ').ok_or(MalformedHeader)?;
    let token = token.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
        Ok(Some(token))
    } else {
        Err(MalformedHeader)
    }
}

impl EdgeAuth {
    /// Checks tokens with `verifier`.
    pub fn new(verifier: UserTokenVerifier) -> Self {
        Self {
            verifier,
            accounts: None,
            _following: None,
        }
    }

    /// Also refuses the tokens of users `accounts` says are not active.
    #[must_use]
    pub fn with_account_status(mut self, accounts: Arc<dyn AccountStatus>) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// Also refuses the tokens of suspended, inactive and deleted users, following the user
    /// events over `discovery`'s NATS connection (until this is dropped) when it has one.
    /// Without NATS, such a token passes the edge until it expires (at most
    /// `auth.token_ttl_secs`) and the services refuse it.
    #[must_use]
    pub fn following_user_events(self, discovery: &Discovery) -> Self {
        let Some(js) = discovery.jetstream() else {
            tracing::info!(
                "the edge refuses a suspended user's token only once it expires: following user events needs NATS"
            );
            return self;
        };
        let (trigger, stopped) = shutdown::channel();
        let revoked: Arc<dyn AccountStatus> = RevokedUsers::follow(js.clone(), stopped);
        Self {
            accounts: Some(revoked),
            _following: Some(trigger),
            ..self
        }
    }

    /// Who is calling, as far as `access` requires.
    ///
    /// # Errors
    /// UNAUTHENTICATED (401) for a missing, malformed or rejected token where one is needed,
    /// PERMISSION_DENIED (403) for a non-admin on an ADMIN method, UNAVAILABLE when the keys
    /// cannot be fetched, NOT_FOUND for INTERNAL methods (they do not exist here).
    pub async fn authorize(
        &self,
        access: Access,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Principal>>, EdgeError> {
        let token = bearer(headers);
        if access == Access::Public {
            // Anonymous calls stay anonymous when a bad token is sent along.
            return Ok(match token {
                Ok(Some(t)) => self.identify(t).await.ok(),
                _ => None,
            });
        }
        if access == Access::Internal {
            return Err(EdgeError::not_found("no such method"));
        }
        let token = match token {
            Ok(Some(t)) => t,
            Ok(None) => return Err(EdgeError::unauthenticated(None)),
            Err(MalformedHeader) => {
                return Err(EdgeError::unauthenticated(Some(
                    "malformed authorization header",
                )));
            }
        };
        let principal = self.identify(token).await?;
        if access == Access::Admin && !principal.is_admin() {
            return Err(EdgeError::new(
                Code::PermissionDenied,
                "this method needs the admin role",
            ));
        }
        Ok(Some(principal))
    }

    async fn identify(&self, token: &str) -> Result<Arc<Principal>, EdgeError> {
        let claims = self.verifier.verify(token).await.map_err(|e| match e {
            TokenError::KeysUnavailable(why) => {
                tracing::warn!(%why, "cannot fetch the JWKS");
                EdgeError::new(Code::Unavailable, "cannot verify tokens right now")
            }
            TokenError::Invalid(why) => {
                tracing::debug!(%why, "token rejected");
                EdgeError::unauthenticated(Some(reason(&why)))
            }
        })?;
        if let Some(accounts) = &self.accounts {
            let active = accounts.is_active(&claims.sub).await.map_err(|e| {
                tracing::warn!(error = %e, "cannot tell whether the account is active");
                EdgeError::new(Code::Unavailable, "cannot verify tokens right now")
            })?;
            if !active {
                tracing::debug!(user_id = %claims.sub, "token of an account that is not active");
                return Err(EdgeError::unauthenticated(Some("account is not active")));
            }
        }
        Ok(Arc::new(Principal::User {
            id: claims.sub,
            roles: claims.roles,
        }))
    }
}

/// A short, fixed description for the client; the verifier's full reason stays in the log.
fn reason(why: &str) -> &'static str {
    let why = why.to_ascii_lowercase();
    if why.contains("expired") {
        "the token has expired"
    } else if why.contains("issuer") {
        "wrong issuer"
    } else if why.contains("audience") {
        "wrong audience"
    } else if why.contains("algorithm") {
        "algorithm not allowed"
    } else if why.contains("signature") || why.contains("kid") {
        "bad signature"
    } else {
        "the token cannot be verified"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, value.parse().expect("ascii"));
        h
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(bearer(&HeaderMap::new()), Ok(None));
        assert_eq!(bearer(&headers("Bearer abc")), Ok(Some("abc")));
        assert_eq!(bearer(&headers("bearer abc")), Ok(Some("abc")));
        assert_eq!(bearer(&headers("Basic abc")), Err(MalformedHeader));
        assert_eq!(bearer(&headers("Bearer ")), Err(MalformedHeader));
        assert_eq!(bearer(&headers("Bearer")), Err(MalformedHeader));
    }

    #[tokio::test]
    async fn missing_and_malformed_tokens_are_401_and_internal_is_404() {
        let verifier = UserTokenVerifier::with_keys("iss".into(), "aud".into(), &[]);
        let auth = EdgeAuth::new(verifier);
        let none = auth
            .authorize(Access::Authenticated, &HeaderMap::new())
            .await;
        assert_eq!(none.expect_err("401").code(), Code::Unauthenticated);
        let bad = auth
            .authorize(Access::Admin, &headers("Bearer x.y.z"))
            .await;
        assert_eq!(bad.expect_err("401").code(), Code::Unauthenticated);
        let public = auth
            .authorize(Access::Public, &headers("Bearer x.y.z"))
            .await;
        assert!(public.expect("public passes").is_none());
        let internal = auth.authorize(Access::Internal, &HeaderMap::new()).await;
        assert_eq!(internal.expect_err("404").code(), Code::NotFound);
    }
}
