//! Request ids and the access log: `x-request-id` is kept (when sane) or generated, set on the
//! request so it reaches the services, and returned; every request then gets one JSON log line
//! with method, path, protocol, status, RPC, user, client and latency. Metrics are labelled
//! with the RPC a handler routed the request to, never with the path.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::edge::{AccessNote, ClientAddr};

const REQUEST_ID: &str = "x-request-id";

/// The `rpc` label of a request no route knows (or shed before routing).
pub const UNKNOWN: &str = "unknown";

/// Adds request ids and access logging.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

/// See [`AccessLogLayer`].
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

fn request_id<B>(request: &Request<B>) -> HeaderValue {
    request
        .headers()
        .get(REQUEST_ID)
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .or_else(|| HeaderValue::from_str(&polyshop_platform::new_request_id()).ok())
        .unwrap_or_else(|| HeaderValue::from_static("-"))
}

impl<S, B, RB> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let id = request_id(&request);
        request.headers_mut().insert(REQUEST_ID, id.clone());
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let client = request
            .extensions()
            .get::<ClientAddr>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_default();
        let span = tracing::info_span!(
            "edge",
            request_id = id.to_str().unwrap_or("-"),
            trace_id = tracing::field::Empty
        );
        polyshop_platform::telemetry::continue_trace(&span, request.headers());
        // Upstream calls forward `traceparent`: make it name the edge's span.
        if let Some(value) = span
            .in_scope(polyshop_platform::telemetry::current_traceparent)
            .and_then(|tp| http::HeaderValue::from_str(&tp).ok())
        {
            request.headers_mut().insert("traceparent", value);
        }
        let started = Instant::now();
        Box::pin(
            async move {
                let result = inner.call(request).await;
                if let Ok(response) = &result {
                    log(response, &method, &path, &client, started);
                }
                result.map(|mut response| {
                    response.headers_mut().insert(REQUEST_ID, id);
                    response
                })
            }
            .instrument(span),
        )
    }
}

fn log<RB>(
    response: &Response<RB>,
    method: &http::Method,
    path: &str,
    client: &str,
    started: Instant,
) {
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let note = response.extensions().get::<AccessNote>();
    let grpc_status = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let status = response.status().as_u16();
    let protocol = note.map_or("http", |n| n.protocol);
    let rpc = note.and_then(|n| n.rpc.as_deref()).unwrap_or("");
    let user = note.and_then(|n| n.user.as_deref()).unwrap_or("");
    // Labelled by RPC, never by path: paths carry ids, and a path no route knows is any
    // string a client likes.
    let status_label = status.to_string();
    let labels = [
        ("protocol", protocol),
        ("rpc", if rpc.is_empty() { UNKNOWN } else { rpc }),
        ("status", status_label.as_str()),
    ];
    polyshop_platform::metrics::inc(
        "polyshop_edge_requests_total",
        "Requests the edge answered, by protocol, RPC and HTTP status.",
        &labels,
    );
    polyshop_platform::metrics::observe(
        "polyshop_edge_request_duration_seconds",
        "Time the edge took to answer, by protocol and RPC.",
        &labels[..2],
        latency_ms / 1000.0,
    );
    if status >= 500 {
        tracing::warn!(target: "polyshop_gateway::access", %method, path, protocol, status, grpc_status, rpc, user, client, latency_ms, "request");
    } else {
        tracing::info!(target: "polyshop_gateway::access", %method, path, protocol, status, grpc_status, rpc, user, client, latency_ms, "request");
    }
}
