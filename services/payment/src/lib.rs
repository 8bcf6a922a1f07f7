//! The payment bounded context: charges against a simulated, deterministic card provider
//! (test tokens in [`domain::provider`], the provider itself in [`provider`], which gets each
//! charge's idempotency key), idempotent by a Stripe-like key; full refunds that
//! never return more than was captured; gap-free invoices; and the PaymentCaptured,
//! PaymentDeclined and PaymentRefunded events, written to the outbox in the transaction of
//! the change and published to `POLYSHOP_PAYMENT`.
//!
//! Layers: [`grpc`] → [`app`] → [`domain`], with [`store`] implementing the repository and
//! [`events`] giving the events their wire form.

pub mod app;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod provider;
pub mod store;

use std::{future::Future, sync::Arc, time::Duration};

use polyshop::payment::v1::payment_service_server::PaymentServiceServer;
use polyshop_platform::{
    auth::{Authenticator, RevokedUsers},
    config::Settings,
    db,
    events::{EventBus, outbox},
    retention::{Pruner, Rule},
    server::{self, ServerSpec, StartError},
    shutdown,
};
use tokio::net::TcpListener;

use crate::store::SeaPaymentRepository;

/// The name this service verifies service tokens as.
pub const SERVICE_NAME: &str = "polyshop-payment";

/// Serves the payment service on `listener` until `shutdown` resolves, with the standard
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

/// Opens the database, runs migrations, starts the event bus (its outbox relay stops with the
/// server), and serves the payment service on `listener` with `auth` until `shutdown`
/// resolves. Tests pass an authenticator that trusts their tokens.
///
/// # Errors
/// [`StartError`] if the database, NATS URL or server fail.
pub async fn serve_with_auth(
    settings: Settings,
    listener: TcpListener,
    auth: Arc<Authenticator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let conn = db::connect(&settings.data_dir, "payment", &settings.payment).await?;
    db::migrate(&conn, &[store::MIGRATIONS, outbox::MIGRATIONS].concat()).await?;

    // The trigger lives in the server's shutdown future: it fires with `shutdown`, and is
    // dropped (which also stops the relay) if the server returns early.
    let (stop_bus, bus_stopped) = shutdown::channel();
    let bus = EventBus::start(&settings, SERVICE_NAME, conn.clone(), bus_stopped.clone()).await?;
    bus.register("payment", settings.payment.url());
    // The keys are separate rows from the payments they point at: a charge or refund replayed
    // after the window is a new request, and the payment itself is kept.
    let keys =
        |table| Rule::idempotency_keys(table, "idempotency_key", "created_at", &settings.events);
    Pruner::new(conn.clone())
        .rule(keys("charge_keys"))
        .rule(keys("refund_keys"))
        .spawn(settings.events.prune_interval(), bus_stopped.clone());
    // Keys of user tokens come from the user service's instances as discovery finds them.
    auth.discover_keys(bus.discovery(), &settings)
        .map_err(|e| StartError::Other(e.to_string()))?;
    // Tokens of suspended or deleted users are refused once the user service's event arrives.
    auth.set_account_status(RevokedUsers::follow(bus.js.clone(), bus_stopped));
    let shutdown = async move {
        shutdown.await;
        stop_bus.fire();
    };

    let repo = Arc::new(SeaPaymentRepository::new(conn.clone(), bus.signal));
    let provider = Arc::new(provider::SimulatedProvider::default());
    let routes = tonic::service::Routes::new(PaymentServiceServer::new(grpc::PaymentGrpc::new(
        repo, provider,
    )));
    server::serve(
        listener,
        ServerSpec {
            name: "payment",
            grpc_services: vec!["polyshop.payment.v1.PaymentService"],
            routes,
            db: conn,
            health: server::health::Health::new("payment", &settings.data_dir)
                .nats(bus.js.client(), server::health::nats_critical("payment")),
            auth,
            grace: Duration::from_secs(settings.shutdown_grace_secs),
        },
        shutdown,
    )
    .await?;
    Ok(())
}
