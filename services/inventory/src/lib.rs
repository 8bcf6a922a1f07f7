//! The inventory bounded context: stock levels per product and reservations that hold stock
//! for an order until it is confirmed (sold), released, or the hold expires and the sweeper
//! returns it. Every change publishes StockAdjusted, StockReserved, StockConfirmed or
//! StockReleased, written to the outbox in the transaction of the change and published to
//! `POLYSHOP_INVENTORY`; `product.created` from the catalog gives a new product a stock row
//! at 0, and only a product with a row can be counted (SetStock answers NOT_FOUND,
//! `PRODUCT_NOT_FOUND`, for any other id).
//!
//! Layers: [`grpc`] → [`app`] → [`domain`], with [`store`] implementing the repository and
//! [`events`] the events' wire form and the `product.created` consumer.

pub mod app;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use std::{future::Future, sync::Arc, time::Duration};

use polyshop::inventory::v1::inventory_service_server::InventoryServiceServer;
use polyshop_platform::{
    auth::{Authenticator, RevokedUsers},
    config::Settings,
    db,
    events::{EventBus, outbox},
    server::{self, ServerSpec, StartError},
    shutdown,
};
use tokio::net::TcpListener;

use crate::{app::Sweeper, store::SeaInventoryRepository};

/// The name this service verifies service tokens as.
pub const SERVICE_NAME: &str = "polyshop-inventory";

/// Serves the inventory service on `listener` until `shutdown` resolves, with the standard
/// authenticator (user tokens through the user service's JWKS, the shared service key).
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

/// Opens the database, runs migrations, starts the event bus (outbox relay and the
/// `product.created` consumer) and the reservation sweeper, and serves the inventory service
/// on `listener` with `auth` until `shutdown` resolves. The background tasks stop when
/// `shutdown` fires (or the server stops on its own). NATS need not be up: the bus connects
/// in the background and events wait in the outbox.
///
/// # Errors
/// [`StartError`] if the database, NATS URL or server fail.
pub async fn serve_with_auth(
    settings: Settings,
    listener: TcpListener,
    auth: Arc<Authenticator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let conn = db::connect(
        &settings.data_dir,
        "inventory",
        &settings.inventory.service(),
    )
    .await?;
    db::migrate(&conn, &[store::MIGRATIONS, outbox::MIGRATIONS].concat()).await?;

    // The trigger lives in the server's shutdown future: it fires with `shutdown`, and is
    // dropped (which also stops the relay, the consumer and the sweeper) if the server
    // returns early.
    let (stop_background, background_stopped) = shutdown::channel();
    let bus = EventBus::start(
        &settings,
        SERVICE_NAME,
        conn.clone(),
        background_stopped.clone(),
    )
    .await?;
    bus.register("inventory", settings.inventory.service().url());
    // Keys of user tokens come from the user service's instances as discovery finds them.
    auth.discover_keys(bus.discovery(), &settings)
        .map_err(|e| StartError::Other(e.to_string()))?;
    // Tokens of suspended or deleted users are refused once the user service's event arrives.
    auth.set_account_status(RevokedUsers::follow(
        bus.js.clone(),
        background_stopped.clone(),
    ));
    events::spawn_consumers(&bus, &conn, &settings.events, &background_stopped);
    let repo = Arc::new(SeaInventoryRepository::new(conn.clone(), bus.signal));
    let every = Duration::from_secs(settings.inventory.sweep_interval_secs);
    let sweeper = tokio::spawn(Sweeper::new(repo.clone(), every).run(background_stopped));
    let shutdown = async move {
        shutdown.await;
        stop_background.fire();
    };

    let handlers = grpc::InventoryGrpc::new(repo, settings.inventory.reservation_hold_secs);
    let routes = tonic::service::Routes::new(InventoryServiceServer::new(handlers));
    let served = server::serve(
        listener,
        ServerSpec {
            name: "inventory",
            grpc_services: vec!["polyshop.inventory.v1.InventoryService"],
            routes,
            db: conn,
            health: server::health::Health::new("inventory", &settings.data_dir)
                .nats(bus.js.client(), server::health::nats_critical("inventory")),
            auth,
            grace: Duration::from_secs(settings.shutdown_grace_secs),
        },
        shutdown,
    )
    .await;
    if let Err(e) = sweeper.await {
        tracing::warn!(error = %e, "reservation sweeper ended abnormally");
    }
    served?;
    Ok(())
}
