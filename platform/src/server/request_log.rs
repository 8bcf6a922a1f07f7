//! One JSON log line per call: request id (kept from `x-request-id` or generated, and echoed
//! back), method, gRPC status and latency, inside a span that carries the request id and
//! continues the caller's trace.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use http::HeaderValue;
use tower::{Layer, Service};
use tracing::Instrument;

const REQUEST_ID: &str = "x-request-id";

/// Logs every call of a server.
#[derive(Debug, Clone)]
pub struct RequestLogLayer {
    service: &'static str,
}

impl RequestLogLayer {
    /// Logs calls of `service`.
    pub fn new(service: &'static str) -> Self {
        Self { service }
    }
}

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLog {
            service: self.service,
            inner,
        }
    }
}

/// See [`RequestLogLayer`].
#[derive(Debug, Clone)]
pub struct RequestLog<S> {
    service: &'static str,
    inner: S,
}

impl<S, B, RB> Service<http::Request<B>> for RequestLog<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map_or_else(crate::new_id, str::to_owned);
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            request.headers_mut().insert(REQUEST_ID, value);
        }
        let method = request.uri().path().to_owned();
        let service = self.service;
        let span = tracing::info_span!(
            "rpc",
            service = self.service,
            %method,
            %request_id,
            trace_id = tracing::field::Empty
        );
        crate::telemetry::continue_trace(&span, request.headers());
        let started = Instant::now();
        Box::pin(
            async move {
                let result = inner.call(request).await;
                let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                match result {
                    Ok(mut response) => {
                        // Errors come trailers-only, with grpc-status in the headers; a
                        // successful unary call puts OK in the trailers.
                        let code = response
                            .headers()
                            .get("grpc-status")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<i32>().ok())
                            .unwrap_or(0);
                        let code_name = code_label(tonic::Code::from_i32(code));
                        if let Ok(value) = HeaderValue::from_str(&request_id) {
                            response.headers_mut().insert(REQUEST_ID, value);
                        }
                        if method.starts_with('/') && !method.starts_with("/polyshop.") {
                            // Health, reflection and metrics scrapes.
                            tracing::debug!(grpc.code = %code_name, latency_ms, "call");
                        } else {
                            tracing::info!(grpc.code = %code_name, latency_ms, "call");
                            record(service, &method, code_name, latency_ms / 1000.0);
                        }
                        Ok(response)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, latency_ms, "call failed in transport");
                        Err(e)
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// Counts a served call and its latency.
/// The code's name as `Debug` spells it (`Ok`, `NotFound`, …), without formatting per call.
fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "Ok",
        C::Cancelled => "Cancelled",
        C::Unknown => "Unknown",
        C::InvalidArgument => "InvalidArgument",
        C::DeadlineExceeded => "DeadlineExceeded",
        C::NotFound => "NotFound",
        C::AlreadyExists => "AlreadyExists",
        C::PermissionDenied => "PermissionDenied",
        C::ResourceExhausted => "ResourceExhausted",
        C::FailedPrecondition => "FailedPrecondition",
        C::Aborted => "Aborted",
        C::OutOfRange => "OutOfRange",
        C::Unimplemented => "Unimplemented",
        C::Internal => "Internal",
        C::Unavailable => "Unavailable",
        C::DataLoss => "DataLoss",
        C::Unauthenticated => "Unauthenticated",
    }
}

fn record(service: &str, method: &str, code: &str, seconds: f64) {
    crate::metrics::inc(
        "polyshop_rpc_requests_total",
        "gRPC calls served, by method and status code.",
        &[("service", service), ("method", method), ("code", code)],
    );
    crate::metrics::observe(
        "polyshop_rpc_duration_seconds",
        "Time to serve a gRPC call, by method.",
        &[("service", service), ("method", method)],
        seconds,
    );
}
