//! The listener: HTTP/1.1 and HTTP/2 (h2c, or over TLS when the edge has a certificate: see
//! [`crate::tls`]) on one port through hyper-util's auto builder, at most
//! `gateway.max_streams_per_connection` streams per HTTP/2 connection, the client address
//! put into each request, and graceful shutdown (stop accepting, health NOT_SERVING, drain
//! in-flight connections for up to the grace period). Also the admin listener, when one is
//! configured: `/metrics` and the probes (`/livez`, `/readyz`, `/health`), nothing else.
//!
//! Health (docs/operating.md, "Health"): gRPC health names `liveness` (SERVING while the
//! process runs, also while it drains), and `readiness`, `""` and the storefront service
//! (NOT_SERVING once it drains); over HTTP `/livez` (`/healthz`), `/readyz` (ready while any
//! context serves) and the full check `/health`.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tonic::body::Body;
use tonic_health::ServingStatus;
use tower::{Service, ServiceExt};

use polyshop_platform::server::health;

use crate::{dispatch, edge::Edge, errors::EdgeError, tls};

/// Health names meaning readiness: the whole server, `readiness`, and the one service it
/// implements. `liveness` is SERVING for as long as the process runs.
pub const HEALTH_NAMES: [&str; 3] = [
    "",
    health::READINESS,
    "polyshop.storefront.v1.StorefrontService",
];

/// Serves `service` on `listener` until `shutdown`, then drains for up to `grace`. With
/// `tls`, each connection completes a TLS handshake (within [`tls::HANDSHAKE_TIMEOUT`]) first.
pub async fn run<S>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    edge: Arc<Edge>,
    service: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    edge.health
        .set_service_status(health::LIVENESS, ServingStatus::Serving)
        .await;
    for name in HEALTH_NAMES {
        edge.health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let builder = builder(edge.settings.max_streams_per_connection);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let service = service.clone();
        let proxies = Arc::clone(&edge);
        let hyper_service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let client = proxies.client_addr(peer, request.headers());
            request.extensions_mut().insert(client);
            service.clone().oneshot(request)
        });
        if let Some(acceptor) = &tls {
            // The handshake runs in the connection's task, so a slow client holds up no one.
            let (acceptor, builder, watcher) =
                (acceptor.clone(), builder.clone(), graceful.watcher());
            tokio::spawn(async move {
                let stream =
                    match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                let connection =
                    builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_service);
                if let Err(e) = watcher.watch(connection.into_owned()).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
            continue;
        }
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), hyper_service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    edge.start_draining();
    for name in HEALTH_NAMES {
        edge.health
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    tracing::info!("gateway draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("gateway stopped"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the grace period; stopping anyway");
        }
    }
}

/// Serves `GET /metrics`, `/livez`, `/readyz` and `/health` on `listener` (404 for anything
/// else) until `shutdown`.
pub async fn run_admin(listener: TcpListener, edge: Arc<Edge>, shutdown: impl Future<Output = ()>) {
    // Scrapers open a connection or two; a few streams each is plenty.
    let builder = builder(4);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let edge = edge.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let edge = edge.clone();
            async move { Ok::<_, Infallible>(admin(&edge, &request).await) }
        });
        let connection = graceful.watch(
            builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
}

async fn admin(edge: &Edge, request: &Request<Incoming>) -> Response<Body> {
    if request.method() != http::Method::GET {
        return EdgeError::not_found("the admin listener serves GET only").into_json();
    }
    match request.uri().path() {
        "/metrics" => dispatch::metrics(),
        "/livez" | "/healthz" => crate::errors::json_response(
            http::StatusCode::OK,
            bytes::Bytes::from_static(b"{\"status\":\"ok\"}"),
        ),
        "/readyz" => dispatch::ready(edge).await,
        "/health" => match dispatch::full_health(edge).await {
            Some(response) => response,
            None => EdgeError::not_found("no full health check yet").into_json(),
        },
        _ => EdgeError::not_found(
            "the admin listener serves GET /metrics, /livez, /readyz and /health only",
        )
        .into_json(),
    }
}

/// The edge's full health check: each context it routes to (non-critical each; the edge is
/// ready while any serves, which is its one critical check, `contexts`), NATS (discovery,
/// shared rate limits, revocations; never critical), disk space of `data_dir` and memory.
pub fn full_health(
    edge: &Arc<Edge>,
    discovery: &polyshop_platform::discovery::Discovery,
    data_dir: &std::path::Path,
) -> health::Health {
    let mut full = health::Health::new("gateway", data_dir);
    if let Some(js) = discovery.jetstream() {
        full = full.nats(js.client(), false);
    }
    let weak = Arc::downgrade(edge);
    full = full.check("contexts", true, move || {
        let edge = weak.upgrade();
        async move {
            let edge = edge.ok_or("the edge has stopped")?;
            let probes = edge.upstreams.probe().await;
            let serving = probes.iter().filter(|(_, ok)| *ok).count();
            if serving == 0 && !probes.is_empty() {
                return Err("no context serves".to_owned());
            }
            Ok(format!("{serving} of {} contexts serve", probes.len()))
        }
    });
    for context in edge.upstreams.contexts() {
        let weak = Arc::downgrade(edge);
        let name = context.clone();
        full = full.upstream_probe(&context, move || {
            let edge = weak.upgrade();
            let name = name.clone();
            async move {
                edge.ok_or("the edge has stopped")?
                    .upstreams
                    .probe_context(&name)
                    .await
            }
        });
    }
    full
}

/// HTTP/1.1 and HTTP/2 with timers, at most `max_streams` streams per HTTP/2 connection.
fn builder(max_streams: u32) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(max_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

/// The next connection, with Nagle off.
async fn accept(listener: &TcpListener) -> (TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
