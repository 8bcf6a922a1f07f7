//! JSON over HTTP: route → access rule → rate limit → body (size- and time-limited) → an
//! in-flight slot → request message → upstream unary call with a deadline → JSON response, or
//! the JSON error shape. The slot is taken only once the body is in: a client trickling bytes
//! holds a stream and a socket, never the edge's capacity.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use polyshop_platform::{
    auth::Principal,
    contract::Idempotency,
    discovery::{Outcome, Picked, Pool},
};
use prost::Message;
use prost_reflect::DynamicMessage;
use tonic::{Code, Status, body::Body};

use crate::{
    codec::{DynamicCodec, RawCodec},
    edge::{AccessNote, ClientAddr, Edge},
    errors::{self, EdgeError, json_response},
    ratelimit,
    routes::{HttpRoute, Lookup, Rpc},
    transcode::{self, Reply},
    unary::CallError,
    upstream::Remote,
};

/// Request headers passed on to the service as gRPC metadata. Names, not strings: looking a
/// header up by `&str` parses and hashes the name again on every request.
pub const FORWARDED: [HeaderName; 5] = [
    header::AUTHORIZATION,
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
    header::USER_AGENT,
];

/// Handles one JSON request.
pub async fn handle(edge: &Edge, request: Request<Incoming>) -> Response<Body> {
    let mut note = AccessNote {
        protocol: "json",
        ..AccessNote::default()
    };
    let mut response = match serve(edge, request, &mut note).await {
        Ok(r) => r,
        Err(e) => e.into_json(),
    };
    response.extensions_mut().insert(note);
    response
}

async fn serve(
    edge: &Edge,
    request: Request<Incoming>,
    note: &mut AccessNote,
) -> Result<Response<Body>, EdgeError> {
    let (parts, body) = request.into_parts();
    let (route, vars) = match edge
        .routes
        .lookup(&parts.method, parts.uri.path())
        .map_err(|e| EdgeError::bad_request(e.to_string()))?
    {
        Lookup::Found(route, vars) => (route, vars),
        Lookup::MethodNotAllowed(allowed) => return Err(EdgeError::method_not_allowed(&allowed)),
        Lookup::NotFound => {
            return Err(EdgeError::not_found(format!(
                "no route for {} {}",
                parts.method,
                parts.uri.path()
            )));
        }
    };
    let rpc = &route.rpc;
    note.rpc = Some(rpc.path.clone());
    let result = admit_and_respond(edge, route, &vars, parts, body, note).await;
    // Deprecation, Sunset and a Link to the successor (RFC 9745, RFC 8594), on errors too:
    // a client learns the method is going away whatever answer it got.
    let mut sunset = HeaderMap::new();
    rpc.mark_deprecation(&mut sunset, Some(&vars));
    errors::with_headers(result, sunset)
}

/// Authorizes and rate-limits a call of `route`, then answers it (with the limiter's
/// headers, errors included).
async fn admit_and_respond(
    edge: &Edge,
    route: &HttpRoute,
    vars: &[(String, String)],
    parts: http::request::Parts,
    body: Incoming,
    note: &mut AccessNote,
) -> Result<Response<Body>, EdgeError> {
    let rpc = &route.rpc;
    let principal = edge.auth.authorize(rpc.access, &parts.headers).await?;
    note.user = principal
        .as_deref()
        .and_then(Principal::user_id)
        .map(str::to_owned);
    let key = edge.limit_key(
        rpc.class,
        principal.as_deref(),
        parts.extensions.get::<ClientAddr>().copied(),
    );
    let verdict = edge.limiter.check(rpc.class, &key)?;
    let answer = respond(edge, route, vars, &parts, body, principal, note).await;
    errors::with_headers(answer, verdict.headers)
}

async fn respond(
    edge: &Edge,
    route: &HttpRoute,
    vars: &[(String, String)],
    parts: &http::request::Parts,
    body: Incoming,
    principal: Option<Arc<Principal>>,
    note: &mut AccessNote,
) -> Result<Response<Body>, EdgeError> {
    let rpc = &route.rpc;
    let limits = BodyLimits {
        bytes: edge.settings.max_body_bytes,
        time: Duration::from_millis(edge.settings.body_timeout_ms),
    };
    let body = read_body(body, &parts.headers, limits).await?;
    let _admission = edge
        .admit(parts.extensions.get::<ClientAddr>().copied())
        .inspect_err(|_| note.protocol = "shed")?;
    let message = transcode::request(route, vars, parts.uri.query(), &body)?;
    if edge.settings.validate_requests {
        rpc.check(&message)?;
    }
    let account = ratelimit::client::account(rpc, &message);
    edge.limiter.check_account(account.as_deref())?;
    let deadline = edge.deadline(&parts.headers);
    let reply = call(edge, rpc, message, &parts.headers, principal, deadline).await?;
    let bytes = transcode::response(route, reply)?;
    Ok(json_response(StatusCode::OK, bytes))
}

/// How much of a body is read, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Most bytes (413 above).
    pub bytes: usize,
    /// Longest wait for all of them (408 after).
    pub time: Duration,
}

/// Reads the body, refusing more than `limits.bytes` (413) or taking longer than
/// `limits.time` (408). A body whose content type is not JSON is refused (415).
///
/// # Errors
/// As above, or INVALID_ARGUMENT when it cannot be read.
pub async fn read_body(
    body: Incoming,
    headers: &HeaderMap,
    limits: BodyLimits,
) -> Result<Bytes, EdgeError> {
    let limit = limits.bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(EdgeError::too_large(limit));
    }
    let bytes = tokio::time::timeout(limits.time, Limited::new(body, limit).collect())
        .await
        .map_err(|_| EdgeError::body_too_slow(limits.time))?
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                EdgeError::too_large(limit)
            } else {
                EdgeError::bad_request("cannot read the request body")
            }
        })?
        .to_bytes();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.to_ascii_lowercase().contains("json"));
    if !json && !bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(
            EdgeError::bad_request("the request body must be application/json")
                .with_http(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        );
    }
    Ok(bytes)
}

/// Calls `rpc` upstream with `message`, forwarding the caller's token and request id. A call
/// that never left (no connection to the instance) is tried once more on another instance;
/// one lost after it was sent is tried again elsewhere only when the contract says a retry is
/// safe.
///
/// # Errors
/// The upstream's status; UNAVAILABLE when it cannot be reached; DEADLINE_EXCEEDED after
/// `deadline`.
pub async fn call(
    edge: &Edge,
    rpc: &Rpc,
    message: DynamicMessage,
    headers: &HeaderMap,
    principal: Option<Arc<Principal>>,
    deadline: Duration,
) -> Result<Reply, EdgeError> {
    let started = Instant::now();
    let Some(pool) = edge.upstreams.pool(&rpc.upstream) else {
        let local = local(edge, rpc, message, headers, principal, deadline);
        return timed(rpc, deadline, local)
            .await
            .map_err(Failure::into_error);
    };
    let breaker = edge.upstreams.breaker(&rpc.upstream);
    if breaker.is_some_and(|b| !b.allow()) {
        return Err(EdgeError::new(
            Code::Unavailable,
            format!("{} is unavailable (circuit open)", rpc.upstream),
        ));
    }
    let bytes: Bytes = message.encode_to_vec().into();
    let outcome = remote_with_retry(pool, rpc, bytes, headers, deadline, started).await;
    if let Some(b) = breaker {
        b.record(!outcome.as_ref().is_err_and(Failure::counts_against_circuit));
    }
    outcome.map_err(Failure::into_error)
}

/// One attempt on an instance and, when it did not get through, one on another.
async fn remote_with_retry(
    pool: &Pool<Remote>,
    rpc: &Rpc,
    bytes: Bytes,
    headers: &HeaderMap,
    deadline: Duration,
    started: Instant,
) -> Result<Reply, Failure> {
    let Some(first) = pool.pick(None) else {
        return Err(Failure::NotSent(EdgeError::new(
            Code::Unavailable,
            format!("{} is unavailable", rpc.upstream),
        )));
    };
    let outcome = timed(
        rpc,
        deadline,
        remote(&first, rpc, bytes.clone(), headers, deadline),
    )
    .await;
    let retry = match &outcome {
        Err(Failure::NotSent(_)) => true,
        Err(Failure::Transport(_)) => rpc.idempotency != Idempotency::Unknown,
        _ => false,
    };
    if !retry {
        return outcome;
    }
    let Some(second) = pool.pick(Some(&first)) else {
        return outcome;
    };
    drop(first);
    // The same instance again (the context has one): give a restarting process a moment.
    tokio::time::sleep(RETRY_AFTER).await;
    let left = deadline.saturating_sub(started.elapsed());
    timed(rpc, left, remote(&second, rpc, bytes, headers, left)).await
}

/// Pause before the one retry of a call that did not reach the service.
const RETRY_AFTER: Duration = Duration::from_millis(20);

/// Why one attempt failed.
enum Failure {
    /// The service answered with an error, or time ran out: final.
    Answered(EdgeError),
    /// Nothing reached the service: safe to repeat elsewhere.
    NotSent(EdgeError),
    /// The call may have reached the service (connection lost): safe to repeat if idempotent.
    Transport(EdgeError),
}

impl Failure {
    /// Whether it says the context is failing (unreachable or UNAVAILABLE), as opposed to
    /// answering with an error of its own. A missed deadline does not count: a client asking
    /// for a tiny one could otherwise open the circuit for everyone.
    fn counts_against_circuit(&self) -> bool {
        match self {
            Self::NotSent(_) | Self::Transport(_) => true,
            Self::Answered(e) => e.code() == Code::Unavailable,
        }
    }

    fn into_error(self) -> EdgeError {
        match self {
            Self::Answered(e) | Self::NotSent(e) | Self::Transport(e) => e,
        }
    }
}

/// `exchange`, DEADLINE_EXCEEDED if it outlasts `deadline`.
async fn timed(
    rpc: &Rpc,
    deadline: Duration,
    exchange: impl Future<Output = Result<Reply, Failure>>,
) -> Result<Reply, Failure> {
    let expires = Instant::now() + deadline;
    let late = || {
        Failure::Answered(EdgeError::new(
            Code::DeadlineExceeded,
            format!("{} did not answer in time", rpc.upstream),
        ))
    };
    // The timer ticks in milliseconds, so an answer can beat a sub-millisecond deadline to
    // the wakeup: a reply that comes in after the deadline is late all the same.
    match tokio::time::timeout_at(expires.into(), exchange).await {
        Ok(_) if Instant::now() >= expires => Err(late()),
        Ok(result) => result,
        Err(_) => Err(late()),
    }
}

/// The caller's headers that go upstream as metadata, with room for the four the gRPC
/// request adds (content type, `te`, `grpc-timeout`, user agent).
fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let mut metadata = HeaderMap::with_capacity(FORWARDED.len() + 4);
    for name in FORWARDED {
        if let Some(value) = headers.get(&name) {
            metadata.insert(name, value.clone());
        }
    }
    metadata
}

/// A call to one instance of a remote context over the lean client; how it ended goes into
/// the instance's outlier record.
async fn remote(
    instance: &Picked<Remote>,
    rpc: &Rpc,
    message: Bytes,
    headers: &HeaderMap,
    deadline: Duration,
) -> Result<Reply, Failure> {
    let unavailable = || {
        EdgeError::new(
            Code::Unavailable,
            format!("{} is unavailable", rpc.upstream),
        )
    };
    crate::upstream::count_call(&rpc.upstream);
    let Some(client) = instance.client().unary() else {
        // No lean client (TLS between services): the instance's tonic channel.
        return over_channel(instance, rpc, message, headers, deadline).await;
    };
    let result = client
        .call(&rpc.grpc_path, forwarded(headers), message, deadline)
        .await;
    instance.record(match &result {
        Err(CallError::Status(s)) if s.code() == Code::Unavailable => Outcome::Failed,
        Ok(_) | Err(CallError::Status(_)) => Outcome::Answered,
        Err(CallError::NotSent(_)) => Outcome::Refused,
        Err(CallError::Transport(_)) => Outcome::Failed,
    });
    result.map(Reply::Wire).map_err(|e| match e {
        CallError::Status(status) => Failure::Answered(status.into()),
        CallError::NotSent(why) => {
            tracing::warn!(upstream = %rpc.upstream, instance = %instance.instance().url, error = %why, "upstream call not sent");
            Failure::NotSent(unavailable())
        }
        CallError::Transport(why) => {
            tracing::warn!(upstream = %rpc.upstream, instance = %instance.instance().url, error = %why, "upstream call failed");
            Failure::Transport(unavailable())
        }
    })
}

/// A call to one instance of a remote context through its tonic channels (which dial over
/// TLS when services have it), with the message already encoded; how it ended goes into the
/// instance's outlier record.
async fn over_channel(
    instance: &Picked<Remote>,
    rpc: &Rpc,
    message: Bytes,
    headers: &HeaderMap,
    deadline: Duration,
) -> Result<Reply, Failure> {
    let service = instance.client().service();
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(forwarded(headers));
    request.set_timeout(deadline);
    let path = rpc.grpc_path.clone();
    let exchange: futures::future::BoxFuture<'static, Result<tonic::Response<Bytes>, Status>> =
        Box::pin(async move {
            let mut grpc = tonic::client::Grpc::new(service);
            grpc.ready()
                .await
                .map_err(|e| Status::from_error(Box::new(e)))?;
            grpc.unary(request, path, RawCodec).await
        });
    let result = exchange.await;
    let not_sent = result.as_ref().err().is_some_and(|s| {
        std::error::Error::source(s).is_some_and(polyshop_platform::discovery::never_sent)
    });
    instance.record(match &result {
        Ok(_) => Outcome::Answered,
        Err(_) if not_sent => Outcome::Refused,
        Err(s) if s.code() == Code::Unavailable => Outcome::Failed,
        Err(s) if std::error::Error::source(s).is_some() => Outcome::Failed,
        Err(_) => Outcome::Answered,
    });
    match result {
        Ok(response) => Ok(Reply::Wire(response.into_inner())),
        Err(status) if not_sent => {
            tracing::warn!(upstream = %rpc.upstream, instance = %instance.instance().url, error = %status, "upstream call not sent");
            Err(Failure::NotSent(EdgeError::new(
                Code::Unavailable,
                format!("{} is unavailable", rpc.upstream),
            )))
        }
        Err(status) => Err(sanitize(status, &rpc.upstream)),
    }
}

/// A call to a context served in this process (the storefront), through its tower service.
async fn local(
    edge: &Edge,
    rpc: &Rpc,
    message: DynamicMessage,
    headers: &HeaderMap,
    principal: Option<Arc<Principal>>,
    deadline: Duration,
) -> Result<Reply, Failure> {
    let unavailable = || {
        Failure::Answered(EdgeError::new(
            Code::Unavailable,
            format!("{} is unavailable", rpc.upstream),
        ))
    };
    let service = edge.upstreams.get(&rpc.upstream).ok_or_else(unavailable)?;
    crate::upstream::count_call(&rpc.upstream);
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(forwarded(headers));
    request.set_timeout(deadline);
    if let Some(p) = principal {
        request.extensions_mut().insert(Principal::clone(&p));
    }
    let codec = DynamicCodec::new(rpc.method.output());
    let path = rpc.grpc_path.clone();
    // Owned and boxed: the exchange borrows nothing from the caller, so the handler's future
    // stays `Send` for any lifetime (rustc's higher-ranked inference balks otherwise).
    let exchange: futures::future::BoxFuture<
        'static,
        Result<tonic::Response<DynamicMessage>, Status>,
    > = Box::pin(async move {
        let mut grpc = tonic::client::Grpc::new(service);
        grpc.ready()
            .await
            .map_err(|e| Status::from_error(Box::new(e)))?;
        grpc.unary(request, path, codec).await
    });
    match exchange.await {
        Err(status) => Err(sanitize(status, &rpc.upstream)),
        Ok(response) => Ok(Reply::Message(response.into_inner())),
    }
}

/// Statuses made by the client side (connection refused, reset) carry a transport error as
/// their source: log it, and tell the client only that the context is unavailable.
fn sanitize(status: Status, upstream: &str) -> Failure {
    let Some(source) = std::error::Error::source(&status) else {
        return Failure::Answered(status.into());
    };
    tracing::warn!(upstream, code = ?status.code(), error = %source, "upstream call failed");
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
    while let Some(e) = cause {
        if e.is::<tonic::TimeoutExpired>() {
            return Failure::Answered(EdgeError::new(
                Code::DeadlineExceeded,
                format!("{upstream} did not answer in time"),
            ));
        }
        cause = e.source();
    }
    Failure::Transport(EdgeError::new(
        Code::Unavailable,
        format!("{upstream} is unavailable"),
    ))
}
