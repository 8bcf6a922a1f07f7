//! The bootstrap every service runs: its routes behind request logging and the auth layer,
//! plus the health model of [`health`] (gRPC health names `liveness`, `readiness`, `""` and
//! each served service, the latter two meaning readiness; `GET /livez`, `/readyz` and `/health`
//! over HTTP/1.1 on the same port), Prometheus metrics at `GET /metrics` and
//! tonic-reflection (v1 and v1alpha, so grpcurl 1.8 works), with graceful shutdown: readiness
//! NOT_SERVING first (liveness stays SERVING), then drain in-flight calls for up to the grace
//! period. With TLS between services ([`crate::tls`]) the
//! port serves TLS only (ALPN `h2`, so `/metrics` too is then HTTP/2 over TLS), requiring a
//! client certificate from the CA unless `tls.require_client_cert` is off.

use std::{future::Future, sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tonic::{service::Routes, transport::Server};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    auth::{AuthLayer, Authenticator},
    server::request_log::RequestLogLayer,
    validate::layer::ValidateLayer,
};

pub mod health;
pub mod request_log;

/// The services every Polyshop gRPC server hosts beside its own: health and reflection (v1
/// and v1alpha, so grpcurl of any version can list them).
pub const LOCAL_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// How often the critical dependencies are asked for readiness.
const READINESS_PROBE_EVERY: Duration = Duration::from_secs(2);
/// The first re-probe after a failing one; it doubles up to [`READINESS_PROBE_EVERY`]. A
/// process that starts while its NATS connection is still being made is ready a few ms
/// later: waiting the whole period for that cost every cold start 2 s.
const READINESS_RETRY_FIRST: Duration = Duration::from_millis(25);

/// What a service hands the bootstrap.
pub struct ServerSpec {
    /// Short name for logs, e.g. `user`.
    pub name: &'static str,
    /// Full gRPC names of its services, for health (e.g. `polyshop.user.v1.UserService`).
    pub grpc_services: Vec<&'static str>,
    /// Its tonic routes.
    pub routes: Routes,
    /// Its database, critical for readiness.
    pub db: DatabaseConnection,
    /// Its other dependencies (NATS, upstreams; [`health::Health::new`] for none); the
    /// database is added to it.
    pub health: health::Health,
    /// Its authenticator.
    pub auth: Arc<Authenticator>,
    /// How long in-flight calls may take after shutdown starts.
    pub grace: Duration,
}

/// Why a service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its database.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// Its keys or token setup.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthSetupError),
    /// The server itself.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// Anything else that stops a start, described.
    #[error("{0}")]
    Other(String),
}

/// Why a server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed.
    #[error("server error: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The reflection service could not be built.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Accepted connections with TCP_NODELAY: a gRPC reply ends in a small trailers frame, which
/// Nagle's algorithm would hold back until the client's delayed ACK (~40 ms per call).
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

async fn set_all(reporter: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in names {
        reporter.set_service_status(*name, status).await;
    }
}

/// Serves `spec` on `listener` until `shutdown` resolves, then drains and returns.
///
/// # Errors
/// [`ServeError`] if the server cannot run.
pub async fn serve(
    listener: TcpListener,
    spec: ServerSpec,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    crate::metrics::mark_start();
    let (reporter, health_service) = tonic_health::server::health_reporter();
    // Advertise only what this server serves (health and both reflection versions included); every other type stays resolvable by symbol
    // (error details, messages of other contexts used in events).
    let advertised: Vec<String> = spec
        .grpc_services
        .iter()
        .map(|s| (*s).to_owned())
        .chain(LOCAL_SERVICES.map(str::to_owned))
        .collect();
    let builder = || {
        advertised.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(polyshop::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
            |b, name| b.with_service_name(name.clone()),
        )
    };
    let reflection = builder().build_v1()?;
    let reflection_v1alpha = builder().build_v1alpha()?;

    let names: Vec<&'static str> = spec
        .grpc_services
        .iter()
        .copied()
        .chain([health::READINESS])
        .collect();
    let health = spec.health.database(spec.db.clone());
    // Liveness: SERVING while the process answers, also while it drains.
    reporter
        .set_service_status(health::LIVENESS, ServingStatus::Serving)
        .await;
    let (stop_probe, stopped) = crate::shutdown::channel();
    let probe = tokio::spawn(probe_readiness(
        reporter.clone(),
        names.clone(),
        health.clone(),
        stopped,
    ));

    let probe_abort = probe.abort_handle();
    let health_routes = health.router();
    let addr = listener.local_addr().ok();
    let (drain_started, drain) = crate::shutdown::channel();
    let on_shutdown = {
        let reporter = reporter.clone();
        let names = names.clone();
        let health = health.clone();
        async move {
            shutdown.await;
            // Health goes NOT_SERVING before the listener closes, so balancers stop sending;
            // the probe is gone first, so no late probe result can flip it back.
            stop_probe.fire();
            probe.abort();
            let _ = probe.await;
            health.start_draining();
            set_all(&reporter, &names, ServingStatus::NotServing).await;
            tracing::info!("draining in-flight calls");
            drain_started.fire();
        }
    };
    // Prometheus scrapes and HTTP probes over HTTP/1.1 on the gRPC port: `GET /metrics`,
    // `/livez`, `/readyz`, `/health`.
    let routes = Routes::from(
        spec.routes
            .into_axum_router()
            .route("/metrics", axum::routing::get(crate::metrics::handler))
            .merge(health_routes),
    );
    let mut builder = Server::builder().accept_http1(true);
    let tls = crate::tls::current();
    if let Some(tls) = &tls {
        builder = builder.tls_config(tls.server_config())?;
    }
    tracing::info!(
        service = spec.name,
        ?addr,
        tls = tls.is_some(),
        require_client_cert = tls
            .as_ref()
            .is_some_and(|t| t.settings().require_client_cert),
        "serving"
    );
    let server = builder
        .layer(RequestLogLayer::new(spec.name))
        .layer(AuthLayer::new(spec.auth.clone()))
        // After auth, so an anonymous caller learns nothing of a method's rules.
        .layer(ValidateLayer::new())
        .add_routes(routes)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming(listener), on_shutdown);
    let grace = spec.grace;
    let result = tokio::select! {
        result = server => result.map_err(ServeError::from),
        () = async move { drain.wait().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "calls still running after the grace period; stopping anyway");
            Ok(())
        }
    };
    probe_abort.abort();
    tracing::info!(service = spec.name, "stopped");
    result
}

async fn probe_readiness(
    reporter: HealthReporter,
    names: Vec<&'static str>,
    health: health::Health,
    stopped: crate::shutdown::Shutdown,
) {
    let mut last = None;
    let mut retry = READINESS_RETRY_FIRST;
    loop {
        if stopped.is_fired() {
            return;
        }
        let readiness = health.readiness().await;
        let status = if readiness.is_ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if stopped.is_fired() {
            return;
        }
        if last != Some(status) {
            // Logged on each change, not on every probe.
            for failing in &readiness.failing {
                tracing::warn!(dependency = %failing.name, error = %failing.detail, "not ready");
            }
            if status == ServingStatus::Serving && last.is_some() {
                tracing::info!("ready again");
            }
            set_all(&reporter, &names, status).await;
            last = Some(status);
        }
        let next = if status == ServingStatus::Serving {
            retry = READINESS_RETRY_FIRST;
            READINESS_PROBE_EVERY
        } else {
            retry = (retry * 2).min(READINESS_PROBE_EVERY);
            retry / 2
        };
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = stopped.clone().wait() => return,
        }
    }
}
