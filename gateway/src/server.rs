//! The listener: HTTP/1.1 and HTTP/2 (h2c, or over TLS when the edge has a certificate: see
//! [`crate::tls`]) on one port through hyper-util's auto builder, at most
//! `gateway.max_streams_per_connection` streams per HTTP/2 connection, the client address
//! put into each request, and graceful shutdown (stop accepting, health NOT_SERVING, drain
//! in-flight connections for up to the grace period). Also the admin listener, when one is
//! configured: `/metrics` and nothing else.

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

use crate::{dispatch, edge::Edge, errors::EdgeError, tls};

/// Health names the edge reports: the whole server, and the one service it implements.
pub const HEALTH_NAMES: [&str; 2] = ["", "polyshop.storefront.v1.StorefrontService"];

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

/// Serves `GET /metrics` on `listener` (404 for anything else) until `shutdown`.
pub async fn run_admin(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    // Scrapers open a connection or two; a few streams each is plenty.
    let builder = builder(4);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
            Ok::<_, Infallible>(admin(&request))
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

fn admin(request: &Request<Incoming>) -> Response<Body> {
    if request.method() == http::Method::GET && request.uri().path() == "/metrics" {
        dispatch::metrics()
    } else {
        EdgeError::not_found("the admin listener serves GET /metrics only").into_json()
    }
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
