//! The edge: JSON transcoding, grpc-web and gRPC passthrough with auth, rate limits and OpenAPI.
//!
//! Everything is generic over the descriptor set: routes, access rules, upstreams and the
//! OpenAPI document come from `polyshop::FILE_DESCRIPTOR_SET`, never from per-service code.
//! The storefront (`polyshop.storefront.v1`) is the one service implemented here.
//!
//! A request: [`access_log`] (request id, one log line) → CORS → [`dispatch`] (probes, [`web`] pages, load
//! shedding, protocol) → [`json`] (transcoding through [`routes`], [`transcode`], [`codec`],
//! responses written from the wire by [`wire_json`]) or [`passthrough`] (gRPC, grpc-web) →
//! [`auth`] and [`ratelimit`] → an upstream from [`upstream`] with a deadline → [`errors`] on
//! the way back.

pub mod access_log;
pub mod auth;
pub mod codec;
pub mod dispatch;
pub mod edge;
pub mod errors;
pub mod governance;
pub mod graphql;
pub mod json;
pub mod openapi;
pub mod passthrough;
pub mod ratelimit;
pub mod routes;
pub mod schema;
pub mod server;
pub mod storefront;
pub mod template;
pub mod tls;
pub mod transcode;
pub mod unary;
pub mod upstream;
pub mod web;
pub mod wire_json;

use std::{future::Future, time::Duration};

use polyshop_platform::{
    config::{Settings, url_of},
    discovery::Discovery,
    server::StartError,
    shutdown,
};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

/// Serves the edge on `listener` until `shutdown` resolves, then drains in-flight requests.
/// Upstreams are dialled lazily: a context that is down answers 503 / UNAVAILABLE.
///
/// # Errors
/// [`StartError`] if the contract has a bad HTTP binding, an upstream URL is malformed, or
/// reflection cannot be built.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    // Fires when the edge stops (and when this returns early): watchers and the edge's own
    // registration end with it.
    polyshop_platform::metrics::mark_start();
    let (stop_discovery, discovery_stopped) = shutdown::channel();
    let sharing_stopped = discovery_stopped.clone();
    let admin =
        match settings.gateway.admin_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                StartError::Other(format!("gateway: admin listener on {addr}: {e}"))
            })?),
            None => None,
        };
    let admin_stopped = discovery_stopped.clone();
    // Read the certificate before anything starts: a bad one, or half a pair, fails the start.
    // (Not in `Settings::validate`: the docs test sets each variable alone.)
    let tls = match (
        &settings.gateway.tls_cert_path,
        &settings.gateway.tls_key_path,
    ) {
        (Some(cert), Some(key)) => {
            Some(tls::acceptor(cert, key).map_err(|e| StartError::Other(e.to_string()))?)
        }
        (None, None) => None,
        _ => {
            return Err(StartError::Other(
                "gateway.tls_cert_path and gateway.tls_key_path are set together or not at all"
                    .into(),
            ));
        }
    };
    // TLS to the services (`tls.*`), the same for every channel of this process.
    polyshop_platform::tls::install(&settings.tls)
        .map_err(|e| StartError::Other(format!("gateway: {e}")))?;
    let discovery = Discovery::connect(&settings, "polyshop-gateway", discovery_stopped)
        .await
        .map_err(|e| StartError::Other(format!("gateway: {e}")))?;
    let edge = edge::Edge::build(&settings, &discovery)?;
    let _ = edge
        .full_health
        .set(server::full_health(&edge, &discovery, &settings.data_dir));
    if let Some(admin) = admin {
        tracing::info!(addr = ?admin.local_addr().ok(), "gateway admin listener serving /metrics and the probes");
        tokio::spawn(server::run_admin(admin, edge.clone(), admin_stopped.wait()));
    }
    ratelimit::share::start(&edge, &discovery, sharing_stopped);
    if let Ok(addr) = listener.local_addr() {
        discovery.register("gateway", edge_url(addr, tls.is_some()));
    }
    let service = ServiceBuilder::new()
        .layer(access_log::AccessLogLayer)
        .layer(dispatch::cors(&settings.gateway.cors_allowed_origins))
        .service(dispatch::Dispatch::new(edge.clone()));
    let addr = listener.local_addr().ok();
    tracing::info!(
        ?addr,
        routes = edge.routes.http_routes().len(),
        tls = tls.is_some(),
        "gateway serving"
    );
    server::run(
        listener,
        tls,
        edge,
        service,
        shutdown,
        Duration::from_secs(settings.shutdown_grace_secs),
    )
    .await;
    stop_discovery.fire();
    Ok(())
}

/// The URL clients reach the edge listening on `addr` at: `https://` when it serves TLS.
pub fn edge_url(addr: std::net::SocketAddr, tls: bool) -> String {
    let url = url_of(addr);
    if tls {
        polyshop_platform::tls::https(&url)
    } else {
        url
    }
}

/// The OpenAPI 3.1 document of the contracts, as served at `GET /openapi.json`.
///
/// # Errors
/// [`routes::RouteError`] if the contract has a bad HTTP binding.
pub fn openapi_document() -> Result<serde_json::Value, routes::RouteError> {
    let routes = routes::RouteTable::from_pool(polyshop_platform::contract::pool())?;
    Ok(openapi::document(&routes))
}
