//! The one service behind the listener: probes and the OpenAPI document, then by content type
//! to grpc-web (translated by `tonic_web`), native gRPC or JSON. gRPC calls are shed here when
//! the edge is full, since their bodies stream through; JSON requests only once their body has
//! arrived ([`json`]), so slow senders hold no capacity. CORS for browsers wraps it all.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    edge::{AccessNote, ClientAddr, Edge},
    errors::json_response,
    json, passthrough,
};

/// Routes a request to its handler.
#[derive(Debug, Clone)]
pub struct Dispatch {
    edge: Arc<Edge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Grpc,
    GrpcWeb,
}

fn kind(request: &Request<Incoming>) -> Kind {
    let ct = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if ct.starts_with(b"application/grpc-web") {
        Kind::GrpcWeb
    } else if ct.starts_with(b"application/grpc") {
        Kind::Grpc
    } else {
        Kind::Json
    }
}

impl Dispatch {
    /// Dispatches with `edge`.
    pub fn new(edge: Arc<Edge>) -> Self {
        Self { edge }
    }
}

impl Service<Request<Incoming>> for Dispatch {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let edge = self.edge.clone();
        Box::pin(async move { Ok(dispatch(edge, request).await) })
    }
}

async fn dispatch(edge: Arc<Edge>, request: Request<Incoming>) -> Response<Body> {
    let kind = kind(&request);
    if kind == Kind::Json
        && request.method() == Method::GET
        && let Some(response) = probe(&edge, request.uri().path()).await
    {
        return response;
    }
    if kind == Kind::Json
        && let Some((label, mut response)) = crate::web::serve(
            request.method(),
            request.uri().path(),
            request.headers(),
            edge.settings.web_dir.as_deref(),
        )
        .await
    {
        response.extensions_mut().insert(AccessNote {
            protocol: "http",
            rpc: Some(label.to_owned()),
            user: None,
        });
        return response;
    }
    if kind == Kind::Json && request.uri().path() == crate::graphql::PATH {
        return crate::graphql::handle(edge, request).await;
    }
    match kind {
        Kind::Json => json::handle(&edge, request).await,
        Kind::Grpc | Kind::GrpcWeb => grpc(edge, request, kind).await,
    }
}

/// A gRPC or grpc-web call, holding an in-flight slot (the edge's and its client address's)
/// while its body streams upstream.
async fn grpc(edge: Arc<Edge>, request: Request<Incoming>, kind: Kind) -> Response<Body> {
    let _admission = match edge.admit(request.extensions().get::<ClientAddr>().copied()) {
        Ok(permit) => permit,
        Err(e) => {
            let mut response = e.into_grpc();
            response.extensions_mut().insert(AccessNote::shed());
            return response;
        }
    };
    if kind == Kind::Grpc {
        return passthrough::handle(edge, request.map(Body::new), "grpc").await;
    }
    let inner = tower::service_fn(move |r: Request<Body>| {
        let edge = edge.clone();
        async move { Ok::<_, Infallible>(passthrough::handle(edge, r, "grpc-web").await) }
    });
    match tonic_web::GrpcWebLayer::new()
        .layer(inner)
        .oneshot(request)
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The answer to a probe or document path, labelled with that (fixed) path; `None` for any
/// other path. `/metrics` is one only when no admin listener serves it.
async fn probe(edge: &Edge, path: &str) -> Option<Response<Body>> {
    let (label, mut response) = match path {
        // Liveness: the edge answers (`/healthz` is the older name).
        "/livez" | "/healthz" => (
            if path == "/livez" {
                "/livez"
            } else {
                "/healthz"
            },
            json_response(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}")),
        ),
        "/readyz" => ("/readyz", ready(edge).await),
        // The full check names internals: on the admin listener when there is one.
        "/health" if edge.settings.admin_listen.is_none() => ("/health", full_health(edge).await?),
        "/openapi.json" => (
            "/openapi.json",
            json_response(StatusCode::OK, edge.openapi.clone()),
        ),
        "/metrics" if edge.settings.admin_listen.is_none() => ("/metrics", metrics()),
        _ => return None,
    };
    response.extensions_mut().insert(AccessNote {
        protocol: "http",
        rpc: Some(label.to_owned()),
        user: None,
    });
    Some(response)
}

/// `GET /metrics`: every metric of this process in the OpenMetrics text format.
pub fn metrics() -> Response<Body> {
    let mut response = json_response(StatusCode::OK, polyshop_platform::metrics::render().into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(polyshop_platform::metrics::CONTENT_TYPE),
    );
    response
}

/// `GET /health`: the full check ([`polyshop_platform::server::health`]); `None` before the
/// edge runs (an edge built by a test without [`crate::serve`]).
pub async fn full_health(edge: &Edge) -> Option<Response<Body>> {
    let health = edge.full_health.get()?;
    let report = health.report().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Some(json_response(
        status,
        serde_json::to_vec(&report).unwrap_or_default().into(),
    ))
}

/// `GET /readyz`: 503 while draining or with no context serving.
pub async fn ready(edge: &Edge) -> Response<Body> {
    if edge.is_draining() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from_static(b"{\"status\":\"draining\"}"),
        );
    }
    let (status, body, _) = edge
        .readiness
        .get_for(
            async {
                let probes = edge.upstreams.probe().await;
                let (status, body) = readiness(&probes);
                let all = probes.iter().all(|(_, ok)| *ok);
                (status, Bytes::from(body.to_string()), all)
            },
            |(_, _, all)| {
                if *all {
                    crate::edge::READINESS_TTL
                } else {
                    crate::edge::DEGRADED_READINESS_TTL
                }
            },
        )
        .await;
    json_response(status, body)
}

/// The edge is ready while it can serve something: one context down answers its own routes
/// with 503 and leaves the rest (catalog browsing, say) in the load balancer, as Envoy and
/// Kubernetes expect of an edge. Only with every context down (or while draining) is it
/// unready. The body names each context's state: `ready` when all serve, else `degraded`.
fn readiness(probes: &[(String, bool)]) -> (StatusCode, serde_json::Value) {
    let serving = probes.iter().filter(|(_, ok)| *ok).count();
    let upstreams: serde_json::Map<String, serde_json::Value> = probes
        .iter()
        .map(|(name, ok)| {
            (
                name.clone(),
                json!(if *ok { "serving" } else { "unavailable" }),
            )
        })
        .collect();
    let (status, word) = match serving {
        n if n == probes.len() => (StatusCode::OK, "ready"),
        0 => (StatusCode::SERVICE_UNAVAILABLE, "not ready"),
        _ => (StatusCode::OK, "degraded"),
    };
    (status, json!({ "status": word, "upstreams": upstreams }))
}

/// CORS for browser clients (JSON and grpc-web): the configured origins, the headers gRPC-web
/// and bearer auth need, and the response headers a client must be able to read.
pub fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let names = |list: &[&'static str]| -> Vec<header::HeaderName> {
        list.iter()
            .map(|n| header::HeaderName::from_static(n))
            .collect()
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(names(&[
            "authorization",
            "content-type",
            "x-request-id",
            "x-grpc-web",
            "x-user-agent",
            "grpc-timeout",
            "connect-protocol-version",
            "connect-timeout-ms",
        ]))
        .expose_headers(names(&[
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
            "x-request-id",
            "retry-after",
            "ratelimit",
            "ratelimit-policy",
            "deprecation",
            "sunset",
            "link",
            "www-authenticate",
        ]))
        .max_age(std::time::Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(states: &[(&str, bool)]) -> Vec<(String, bool)> {
        states
            .iter()
            .map(|(n, ok)| ((*n).to_owned(), *ok))
            .collect()
    }

    #[test]
    fn the_edge_is_ready_while_any_context_serves_and_says_which_do_not() {
        let (status, body) = readiness(&probes(&[("catalog", true), ("order", true)]));
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("ready"))
        );
        let (status, body) = readiness(&probes(&[("catalog", true), ("order", false)]));
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("degraded"))
        );
        assert_eq!(body["upstreams"]["order"], "unavailable");
        let (status, _) = readiness(&probes(&[("catalog", false), ("order", false)]));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "nothing to serve");
    }
}
