//! The catalog bounded context: products, their prices and categories. Admins create and
//! change products; anyone reads and lists them, and the order service prices orders from
//! them (inactive products stay readable by id, but are not listed). Every change publishes
//! ProductCreated, ProductUpdated or ProductPriceChanged, written to the outbox in the
//! transaction of the change and published to `POLYSHOP_CATALOG`.
//!
//! Layers: [`grpc`] → [`app`] → [`domain`], with [`store`] implementing the repository and
//! [`events`] giving the events their wire form.

pub mod app;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use std::{future::Future, sync::Arc, time::Duration};

use polyshop::catalog::{
    v1::catalog_service_server::CatalogServiceServer,
    v2::catalog_service_server::CatalogServiceServer as CatalogServiceV2Server,
};
use polyshop_platform::{
    auth::{Authenticator, RevokedUsers},
    config::Settings,
    db,
    events::{EventBus, outbox},
    server::{self, ServerSpec, StartError},
    shutdown,
};
use tokio::net::TcpListener;

use crate::store::{CachedCatalog, SeaCatalogRepository};

/// The name this service verifies service tokens as.
pub const SERVICE_NAME: &str = "polyshop-catalog";

/// Serves the catalog service on `listener` until `shutdown` resolves, verifying user tokens
/// through the user service's JWKS.
///
/// # Errors
/// [`StartError`] if the keys, database, NATS URL or server fail.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let auth = Authenticator::for_service(&settings, SERVICE_NAME)?;
    serve_with_auth(settings, listener, Arc::new(auth), shutdown).await
}

/// Opens the database, runs migrations, starts the event bus (its outbox relay stops with the
/// server), and serves the catalog service on `listener` with `auth` until `shutdown`
/// resolves. Tests pass an authenticator that trusts their tokens. NATS need not be up: the
/// bus connects in the background and events wait in the outbox.
///
/// # Errors
/// [`StartError`] if the database, NATS URL or server fail.
pub async fn serve_with_auth(
    settings: Settings,
    listener: TcpListener,
    auth: Arc<Authenticator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let conn = db::connect(&settings.data_dir, "catalog", &settings.catalog).await?;
    db::migrate(&conn, &[store::MIGRATIONS, outbox::MIGRATIONS].concat()).await?;
    let search_index = store::search::install(&conn)
        .await
        .map_err(|e| StartError::Other(format!("product search index: {e}")))?;

    // The trigger lives in the server's shutdown future: it fires with `shutdown`, and is
    // dropped (which also stops the relay) if the server returns early.
    let (stop_bus, bus_stopped) = shutdown::channel();
    let bus = EventBus::start(&settings, SERVICE_NAME, conn.clone(), bus_stopped.clone()).await?;
    bus.register("catalog", settings.catalog.url());
    // Keys of user tokens come from the user service's instances as discovery finds them.
    auth.discover_keys(bus.discovery(), &settings)
        .map_err(|e| StartError::Other(e.to_string()))?;
    // Tokens of suspended or deleted users are refused once the user service's event arrives.
    auth.set_account_status(RevokedUsers::follow(bus.js.clone(), bus_stopped));
    let shutdown = async move {
        shutdown.await;
        stop_bus.fire();
    };

    let mut products = SeaCatalogRepository::new(conn.clone(), bus.signal);
    if search_index {
        products = products.with_search_index(store::SCAN_FIRST);
    }
    let repo = Arc::new(CachedCatalog::new(products, store::CACHE_TTL));
    let cache = Arc::downgrade(&repo);
    polyshop_platform::runtime_config::follow_cache_ttl(move |ttl| {
        if let Some(cache) = cache.upgrade() {
            cache.set_ttl(ttl);
        }
    });
    // Both versions serve the same products, from the same repository and cache.
    let routes = tonic::service::Routes::new(CatalogServiceServer::new(grpc::CatalogGrpc::new(
        repo.clone(),
    )))
    .add_service(CatalogServiceV2Server::new(grpc::CatalogV2Grpc::new(repo)));
    server::serve(
        listener,
        ServerSpec {
            name: "catalog",
            grpc_services: vec![
                "polyshop.catalog.v1.CatalogService",
                "polyshop.catalog.v2.CatalogService",
            ],
            routes,
            db: conn,
            health: server::health::Health::new("catalog", &settings.data_dir)
                .nats(bus.js.client(), server::health::nats_critical("catalog")),
            auth,
            grace: Duration::from_secs(settings.shutdown_grace_secs),
        },
        shutdown,
    )
    .await?;
    Ok(())
}
