//! The user bounded context: accounts with argon2id credentials, addresses, roles and status,
//! the access tokens every other service verifies through `GetJwks`, and the rotating,
//! revocable refresh tokens that keep a sign-in going.
//!
//! Layers: [`grpc`] → [`app`] → [`domain`], with [`store`] implementing the repository.

pub mod app;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use std::{future::Future, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use polyshop::user::v1::user_service_server::UserServiceServer;
use polyshop_platform::{
    auth::{self, AccountStatus, Authenticator, TokenIssuer, UserTokenVerifier},
    config::{ExposeSecret, Settings},
    db,
    events::{EventBus, outbox},
    retention::Pruner,
    server::{self, ServerSpec, StartError},
    shutdown,
};
use tokio::net::TcpListener;
use tonic::Status;

use crate::{
    app::UserRepository,
    store::{CachedUsers, SeaRefreshTokens, SeaUserRepository},
};

/// The name this service signs and verifies service tokens as.
pub const SERVICE_NAME: &str = "polyshop-user";

/// Token checks ask the database (not the cache) whether the account is still active, so
/// suspending a user stops their tokens at once here, whichever instance suspended them.
struct ActiveAccounts(Arc<CachedUsers<SeaUserRepository>>);

impl AccountStatus for ActiveAccounts {
    fn is_active<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, Status>> {
        Box::pin(async move {
            let user = self.0.inner().find(user_id).await?;
            Ok(user.is_some_and(|u| u.is_active()))
        })
    }
}

/// Opens the database, runs migrations, creates the configured admin, and serves the user
/// service on `listener` until `shutdown` resolves.
///
/// # Errors
/// [`StartError`] if the database, keys or server fail.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let conn = db::connect(&settings.data_dir, "user", &settings.user.service()).await?;
    db::migrate(&conn, &[store::MIGRATIONS, outbox::MIGRATIONS].concat()).await?;
    let (stop, stopped) = shutdown::channel();
    let bus = EventBus::start(&settings, SERVICE_NAME, conn.clone(), stopped.clone()).await?;
    Pruner::new(conn.clone())
        .rule(store::refresh_token_retention())
        .spawn(settings.events.prune_interval(), stopped);
    bus.register("user", settings.user.url());
    let repo = Arc::new(CachedUsers::new(
        SeaUserRepository::new(conn.clone(), bus.signal.clone()),
        store::CACHE_TTL,
    ));
    let cache = Arc::downgrade(&repo);
    polyshop_platform::runtime_config::follow_cache_ttl(move |ttl| {
        if let Some(cache) = cache.upgrade() {
            cache.set_ttl(ttl);
        }
    });

    let hashing = Arc::new(app::Hashing::new(
        settings.user.hash_permits(),
        settings.user.max_waiting_hashes,
        Duration::from_millis(settings.user.hash_wait_ms),
    ));
    if let Some(password) = &settings.user.admin_password {
        let admin = app::ensure_admin(
            repo.as_ref(),
            &hashing,
            &settings.user.admin_username,
            &settings.user.admin_email,
            password.expose_secret(),
        )
        .await
        .map_err(|e| StartError::Other(format!("cannot create the admin account: {e}")))?;
        tracing::info!(user_id = %admin.id, username = %admin.username, "admin account present");
    }

    let key_path = settings
        .auth
        .signing_key_path
        .clone()
        .unwrap_or_else(|| settings.keys_dir().join("user-token-ed25519.pem"));
    let key = auth::keys::load_or_generate(&key_path).map_err(auth::AuthSetupError::from)?;
    let issuer = Arc::new(TokenIssuer::new(
        key,
        settings.auth.issuer.clone(),
        settings.auth.audience.clone(),
        Duration::from_secs(settings.auth.token_ttl_secs),
    ));
    let verifier = UserTokenVerifier::with_keys(
        settings.auth.issuer.clone(),
        settings.auth.audience.clone(),
        &[issuer.jwk()],
    );
    let authenticator = Authenticator::new(
        Arc::new(verifier),
        Arc::new(auth::service_tokens(&settings, SERVICE_NAME)?),
    )
    .with_account_status(Arc::new(ActiveAccounts(repo.clone())));

    let sessions = Arc::new(app::Sessions {
        issuer,
        store: SeaRefreshTokens::new(conn.clone()),
        refresh_ttl: Duration::from_secs(settings.user.refresh_token_ttl_secs),
    });
    let routes = tonic::service::Routes::new(UserServiceServer::new(grpc::UserGrpc::new(
        repo, sessions, hashing,
    )));
    server::serve(
        listener,
        ServerSpec {
            name: "user",
            grpc_services: vec!["polyshop.user.v1.UserService"],
            routes,
            db: conn,
            health: server::health::Health::new("user", &settings.data_dir)
                .nats(bus.js.client(), server::health::nats_critical("user")),
            auth: Arc::new(authenticator),
            grace: Duration::from_secs(settings.shutdown_grace_secs),
        },
        async move {
            shutdown.await;
            stop.fire();
        },
    )
    .await?;
    Ok(())
}
