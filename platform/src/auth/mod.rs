//! Authentication and access control. Every server runs [`AuthLayer`]: it looks the called
//! method up in the contract ([`crate::contract`]), verifies the bearer token the rule needs,
//! and puts the [`Principal`] into the request extensions for the handlers' owner checks.

pub mod keys;
pub mod layer;
pub mod revoked;
pub mod service_keys;
pub mod tokens;

use std::{
    path::PathBuf,
    sync::{Arc, OnceLock},
    time::Duration,
};

use futures::future::BoxFuture;
use http::HeaderMap;
use tonic::Status;

pub use layer::AuthLayer;
pub use revoked::RevokedUsers;
pub use service_keys::{ServiceSigner, ServiceTrust};
pub use tokens::{Claims, ServiceTokens, TokenError, TokenIssuer, UserTokenVerifier};

use crate::{
    config::Settings,
    contract::{self, Access},
};

/// The role name that grants admin rights.
pub const ROLE_ADMIN: &str = "admin";

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in user.
    User {
        /// Their id.
        id: String,
        /// Their role names.
        roles: Vec<String>,
    },
    /// Another Polyshop service.
    Service {
        /// Its name, e.g. `polyshop-order`.
        name: String,
    },
}

impl Principal {
    /// Whether the caller is a user holding the admin role (a service never is: it may call
    /// only the methods whose contract names it among the callers).
    pub fn is_admin(&self) -> bool {
        match self {
            Self::User { roles, .. } => roles.iter().any(|r| r == ROLE_ADMIN),
            Self::Service { .. } => false,
        }
    }

    /// Whether the caller sees every user's data: an admin, or a service the method's
    /// contract lists among its callers (checked before the handler runs).
    pub fn acts_for_anyone(&self) -> bool {
        match self {
            Self::User { .. } => self.is_admin(),
            Self::Service { .. } => true,
        }
    }

    /// The user id of a user caller.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::User { id, .. } => Some(id),
            Self::Service { .. } => None,
        }
    }

    /// Whether the caller may read or change `user_id`'s data: the user, an admin or an
    /// allowed service.
    pub fn may_act_for(&self, user_id: &str) -> bool {
        self.acts_for_anyone() || self.user_id() == Some(user_id)
    }
}

/// The principal a handler was called with.
///
/// # Errors
/// UNAUTHENTICATED when the method is public and no valid token was sent.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<&Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| Status::unauthenticated("a valid access token is required"))
}

/// Whether an account may still use its tokens; the user service answers from its database.
pub trait AccountStatus: Send + Sync + 'static {
    /// `Ok(true)` when the user exists and is active.
    fn is_active<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, Status>>;
}

/// Timeouts of a JWKS fetch.
fn jwks_endpoint(e: tonic::transport::Endpoint) -> tonic::transport::Endpoint {
    e.connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(3))
}

/// Decides, per call, whether the caller may call the method.
pub struct Authenticator {
    users: Arc<UserTokenVerifier>,
    services: Arc<ServiceTokens>,
    accounts: OnceLock<Arc<dyn AccountStatus>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("service", &self.services.name())
            .finish()
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthenticated(why: &str) -> Status {
    Status::unauthenticated(format!("invalid or missing access token: {why}"))
}

impl Authenticator {
    /// An authenticator for the service whose tokens `services` verifies.
    pub fn new(users: Arc<UserTokenVerifier>, services: Arc<ServiceTokens>) -> Self {
        Self {
            users,
            services,
            accounts: OnceLock::new(),
        }
    }

    /// Also reject tokens of users that are no longer active.
    #[must_use]
    pub fn with_account_status(self, accounts: Arc<dyn AccountStatus>) -> Self {
        self.set_account_status(accounts);
        self
    }

    /// Also reject tokens of users that are no longer active, on an authenticator already
    /// shared (made before the event bus that feeds `accounts`). The first source set wins:
    /// `false`, and `accounts` unused, when one was set before.
    pub fn set_account_status(&self, accounts: Arc<dyn AccountStatus>) -> bool {
        self.accounts.set(accounts).is_ok()
    }

    /// The standard authenticator of service `name`: user tokens verified through the user
    /// service's JWKS, service tokens with this service's key and the trusted public keys.
    ///
    /// # Errors
    /// [`AuthSetupError`] if a key cannot be loaded or the user service URL is bad.
    pub fn for_service(settings: &Settings, name: &str) -> Result<Self, AuthSetupError> {
        let url = settings.user.url();
        let users = UserTokenVerifier::remote(
            settings.auth.issuer.clone(),
            settings.auth.audience.clone(),
            crate::discovery::Discovery::fixed()
                .balanced("user", &url, jwks_endpoint)
                .map_err(|e| TokenError::KeysUnavailable(e.to_string()))?,
        );
        Ok(Self::new(
            Arc::new(users),
            Arc::new(service_tokens(settings, name)?),
        ))
    }

    /// Fetches user-token keys through `discovery` from now on (made before the event bus,
    /// the authenticator starts on the configured user URL).
    ///
    /// # Errors
    /// When the user service URL is malformed.
    pub fn discover_keys(
        &self,
        discovery: &crate::discovery::Discovery,
        settings: &Settings,
    ) -> Result<(), crate::discovery::RegistryError> {
        let users = discovery.balanced("user", &settings.user.url(), jwks_endpoint)?;
        self.users.fetch_from(users);
        Ok(())
    }

    /// The service-token half, for outgoing calls.
    pub fn service_tokens(&self) -> Arc<ServiceTokens> {
        self.services.clone()
    }

    /// Checks the call to gRPC `path` with `headers` against the method's access rule.
    ///
    /// # Errors
    /// UNAUTHENTICATED (no or bad token), PERMISSION_DENIED (wrong role, an internal method
    /// called with a user token, a service the contract does not list among the method's
    /// callers), UNAVAILABLE (keys cannot be fetched).
    pub async fn authorize(
        &self,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, Status> {
        let Some(rule) = contract::rule(path) else {
            // Health and reflection: outside the contracts, open by design.
            return Ok(None);
        };
        let token = bearer(headers);
        if rule.access == Access::Public {
            // A public method ignores a bad token rather than failing the anonymous call.
            return Ok(match token {
                Some(t) => self.identify(t).await.ok(),
                None => None,
            });
        }
        let token = token.ok_or_else(|| unauthenticated("missing"))?;
        let principal = self.identify(token).await?;
        match (rule.access, &principal) {
            (_, Principal::Service { name }) if !rule.allows_service(name) => Err(
                Status::permission_denied(format!("{name} is not among this method's callers")),
            ),
            (Access::Internal, Principal::User { .. }) => Err(Status::permission_denied(
                "this method is for Polyshop services only",
            )),
            (Access::Admin, p) if !p.is_admin() => Err(Status::permission_denied(
                "this method needs the admin role",
            )),
            _ => Ok(Some(principal)),
        }
    }

    async fn identify(&self, token: &str) -> Result<Principal, Status> {
        // A token verified before skips even the header parse: most calls carry one.
        if let Some(claims) = self.services.cached(token) {
            return Ok(Principal::Service { name: claims.iss });
        }
        let claims = match self.users.cached(token) {
            Some(claims) => claims,
            None => {
                let kid = jsonwebtoken::decode_header(token)
                    .map_err(|_| unauthenticated("malformed"))?
                    .kid
                    .unwrap_or_default();
                if self.services.knows(&kid) {
                    let claims = self.services.verify(token).map_err(|e| {
                        tracing::debug!(error = %e, "service token rejected");
                        unauthenticated("rejected")
                    })?;
                    return Ok(Principal::Service { name: claims.iss });
                }
                self.users.verify(token).await.map_err(|e| match e {
                    TokenError::KeysUnavailable(why) => {
                        tracing::warn!(%why, "cannot fetch the JWKS");
                        Status::unavailable("cannot verify tokens right now")
                    }
                    TokenError::Invalid(why) => {
                        tracing::debug!(%why, "user token rejected");
                        unauthenticated("rejected")
                    }
                })?
            }
        };
        if let Some(accounts) = self.accounts.get()
            && !accounts.is_active(&claims.sub).await?
        {
            return Err(unauthenticated("account is not active"));
        }
        Ok(Principal::User {
            id: claims.sub,
            roles: claims.roles,
        })
    }
}

/// Why auth could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// A key file problem.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// A token setup problem.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Service `name`'s tokens: its own key (`auth.service_key_path`, or
/// `<data_dir>/keys/services/<name>.pem`, generated and published on first use), verifying
/// against the public keys in `auth.service_trust_dir` (or `<data_dir>/keys/service-trust`).
///
/// # Errors
/// [`AuthSetupError`] if the key cannot be loaded or generated.
pub fn service_tokens(settings: &Settings, name: &str) -> Result<ServiceTokens, AuthSetupError> {
    let signer = ServiceSigner::load(
        service_key_path(settings, name),
        service_trust_dir(settings),
        name,
    )?;
    let trust = Arc::new(ServiceTrust::new(service_trust_dir(settings)));
    Ok(ServiceTokens::new(
        signer,
        trust,
        name,
        Duration::from_secs(settings.auth.service_token_ttl_secs),
    ))
}

/// Where service `name`'s private key is.
pub fn service_key_path(settings: &Settings, name: &str) -> PathBuf {
    settings.auth.service_key_path.clone().unwrap_or_else(|| {
        settings
            .keys_dir()
            .join("services")
            .join(format!("{name}.pem"))
    })
}

/// The directory of trusted service public keys.
pub fn service_trust_dir(settings: &Settings) -> PathBuf {
    settings
        .auth
        .service_trust_dir
        .clone()
        .unwrap_or_else(|| settings.keys_dir().join("service-trust"))
}

/// Adds `authorization: Bearer <service token>` for `audience` to outgoing calls.
#[derive(Debug, Clone)]
pub struct ServiceAuth {
    tokens: Arc<ServiceTokens>,
    audience: String,
}

impl ServiceAuth {
    /// Calls to service `audience` (e.g. `polyshop-inventory`) as this service.
    pub fn new(tokens: Arc<ServiceTokens>, audience: &str) -> Self {
        Self {
            tokens,
            audience: audience.to_owned(),
        }
    }
}

impl tonic::service::Interceptor for ServiceAuth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let token = self
            .tokens
            .token_for(&self.audience)
            .map_err(|e| crate::status::internal(&e))?;
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("internal error"))?;
        request.metadata_mut().insert("authorization", value);
        // Interceptors run inside the caller's span: the callee continues this trace.
        crate::telemetry::inject(request.metadata_mut());
        Ok(request)
    }
}
