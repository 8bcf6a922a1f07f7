//! The order bounded context: the CreateOrder saga over user, catalog, inventory and payment;
//! the event-sourced Order aggregate (versioned events, optimistic concurrency, snapshots);
//! the ListOrders read model built by a projection (CQRS); and a user replica fed by user
//! events for when the user service is away.
//!
//! Layers: [`grpc`] → [`app`] → [`domain`], with [`store`] persisting and [`events`]
//! consuming.

pub mod app;
pub mod codec;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use std::{future::Future, sync::Arc, time::Duration};

use polyshop::order::v1::order_service_server::OrderServiceServer;
use polyshop_platform::{
    auth::Authenticator,
    config::Settings,
    db,
    events::EventBus,
    server::{self, ServerSpec, StartError},
    shutdown,
};
use tokio::net::TcpListener;

use crate::{
    app::{SagaRunner, failpoints::Failpoints},
    domain::saga::Timing,
    grpc::GrpcParticipants,
    store::{EventStore, ReadModel, SagaStore, StoredSagas, Stuck, UserReplica},
};

/// The name this service signs and verifies service tokens as.
pub const SERVICE_NAME: &str = "polyshop-order";

/// Serves the order service with the standard authenticator.
///
/// # Errors
/// [`StartError`] if the database, keys or server fail.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    // Tokens of users the replica knows to be suspended, inactive or deleted stop working here
    // too, within a second of the user event arriving.
    let conn = open(&settings).await?;
    let auth = Authenticator::for_service(&settings, SERVICE_NAME)?.with_account_status(Arc::new(
        grpc::ReplicatedAccounts::new(UserReplica::new(conn.clone())),
    ));
    serve_on(settings, conn, listener, Arc::new(auth), shutdown).await
}

/// Opens and migrates the order database.
async fn open(settings: &Settings) -> Result<sea_orm::DatabaseConnection, StartError> {
    let conn = db::connect(&settings.data_dir, "order", &settings.order.service()).await?;
    store::migrate(&conn).await?;
    Ok(conn)
}

/// Opens the database, starts the event bus, the projection and replica consumers and the
/// saga resumer, and serves until `shutdown` resolves.
///
/// # Errors
/// [`StartError`] if the database, keys or server fail.
pub async fn serve_with_auth(
    settings: Settings,
    listener: TcpListener,
    auth: Arc<Authenticator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let conn = open(&settings).await?;
    serve_on(settings, conn, listener, auth, shutdown).await
}

/// This process's name on its saga claims: host and listen address, unique among live
/// processes (two cannot listen on one address) and kept across a restart in place.
fn saga_owner(listener: &TcpListener) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    match listener.local_addr() {
        Ok(addr) => format!("{host}/{addr}"),
        Err(_) => format!("{host}/{}", polyshop_platform::new_id()),
    }
}

/// Serves over an opened database.
async fn serve_on(
    settings: Settings,
    conn: sea_orm::DatabaseConnection,
    listener: TcpListener,
    auth: Arc<Authenticator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let (stop, stopped) = shutdown::channel();
    let bus = EventBus::start(&settings, SERVICE_NAME, conn.clone(), stopped.clone()).await?;
    bus.register("order", settings.order.url());
    store::SagaStore::new(conn.clone())
        .spawn_gauge(settings.events.gauge_interval(), stopped.clone());
    // Keys of user tokens come from the user service's instances as discovery finds them.
    auth.discover_keys(bus.discovery(), &settings)
        .map_err(|e| StartError::Other(e.to_string()))?;
    let events = &settings.events;
    bus.spawn_consumer(
        conn.clone(),
        events.consumer("order-projection", "POLYSHOP_ORDER", &["polyshop.order.>"]),
        Arc::new(events::ProjectionHandler),
        stopped.clone(),
    );
    bus.spawn_consumer(
        conn.clone(),
        events.consumer("order-user-replica", "POLYSHOP_USER", &["polyshop.user.>"]),
        Arc::new(events::ReplicaHandler),
        stopped.clone(),
    );

    let o = &settings.order;
    let participants = Arc::new(GrpcParticipants::new(
        &settings,
        &auth.service_tokens(),
        &bus,
    )?);
    if let Some(runtime) = polyshop_platform::runtime_config::process() {
        participants.follow(&runtime);
    }
    let health = participants.channels().iter().fold(
        server::health::Health::new("order", &settings.data_dir)
            .nats(bus.js.client(), server::health::nats_critical("order")),
        |health, (context, channel)| health.upstream(context, channel.clone()),
    );
    let events = EventStore::new(conn.clone(), o.snapshot_every);
    let timing = Timing {
        base_ms: millis(o.saga_retry_base_ms),
        max_ms: millis(o.saga_retry_max_ms),
        horizon_ms: millis(o.saga_horizon_secs.saturating_mul(1000)),
    };
    let saga = Arc::new(
        SagaRunner::new(
            Arc::new(StoredSagas::new(events.clone(), bus.signal.clone())),
            participants.clone(),
            Arc::new(UserReplica::new(conn.clone())),
        )
        .with_flags(bus.flags(&settings))
        .with_timing(timing, Duration::from_millis(o.settle_wait_ms))
        .with_lease(
            Duration::from_millis(o.saga_lease_ms),
            Duration::from_millis(o.saga_lease_renew_ms),
        )
        .with_owner(saga_owner(&listener))
        .with_failpoints(Failpoints::armed(&o.failpoints, &settings.data_dir)),
    );
    tokio::spawn(resume_sagas(
        saga.clone(),
        Duration::from_millis(settings.order.resume_interval_ms),
        stopped,
    ));

    let routes = tonic::service::Routes::new(OrderServiceServer::new(grpc::OrderGrpc::new(
        saga,
        events,
        ReadModel::new(conn.clone()),
    )));
    let result = server::serve(
        listener,
        ServerSpec {
            name: "order",
            grpc_services: vec!["polyshop.order.v1.OrderService"],
            routes,
            db: conn,
            health,
            auth,
            grace: Duration::from_secs(settings.shutdown_grace_secs),
        },
        async move {
            shutdown.await;
            stop.fire();
        },
    )
    .await;
    result.map_err(StartError::from)
}

/// Resumes unfinished sagas at start and then every `every`. Every instance runs this; no
/// global lease is needed, since a saga is driven only under its own claim.
async fn resume_sagas(saga: Arc<SagaRunner>, every: Duration, stopped: shutdown::Shutdown) {
    loop {
        saga.resume_all().await;
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stopped.clone().wait() => return,
        }
    }
}

fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Sagas flagged for reconciliation (`polyshop admin orders stuck`): a refund or restock that
/// kept failing past the horizon, with why.
///
/// # Errors
/// [`StartError`] if the database cannot be opened or read.
pub async fn stuck_orders(settings: &Settings) -> Result<Vec<Stuck>, StartError> {
    let conn = open(settings).await?;
    SagaStore::new(conn)
        .stuck()
        .await
        .map_err(|e| StartError::Other(format!("cannot list stuck orders: {e}")))
}

/// Rebuilds the ListOrders read model from the event store (`polyshop admin
/// rebuild-projection orders`); returns how many orders it holds.
///
/// # Errors
/// [`StartError`] if the database cannot be opened or the rebuild fails.
pub async fn rebuild_projection(settings: &Settings) -> Result<usize, StartError> {
    let conn = open(settings).await?;
    events::rebuild(&conn)
        .await
        .map_err(|e| StartError::Other(format!("rebuild failed: {e}")))
}
