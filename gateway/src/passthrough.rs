//! Native gRPC and grpc-web (after `tonic_web`'s translation) to the same upstreams, under the
//! same access rules and limits: the body is forwarded as raw frames, never decoded. Reflection
//! and health are answered here; INTERNAL methods do not exist (UNIMPLEMENTED).

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderMap, HeaderValue, Request, Response, Version, header};
use http_body_util::Limited;
use polyshop_platform::auth::Principal;
use tonic::{Code, body::Body};
use tower::ServiceExt;

use crate::{
    edge::{AccessNote, ClientAddr, Edge},
    errors::{self, EdgeError},
    ratelimit,
    routes::Rpc,
};

/// Connection-level headers that must not be forwarded on HTTP/2.
const HOP_BY_HOP: [header::HeaderName; 6] = [
    header::CONNECTION,
    header::HOST,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::CONTENT_LENGTH,
    header::HeaderName::from_static("keep-alive"),
];

/// Methods of the health and reflection services the edge serves itself.
const LOCAL_METHODS: [&str; 4] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Handles one gRPC call; `protocol` names it for the access log.
pub async fn handle(
    edge: Arc<Edge>,
    request: Request<Body>,
    protocol: &'static str,
) -> Response<Body> {
    let mut note = AccessNote {
        protocol,
        ..AccessNote::default()
    };
    let mut response = match serve(&edge, request, &mut note).await {
        Ok(r) => r,
        Err(e) => e.into_grpc(),
    };
    response.extensions_mut().insert(note);
    response
}

async fn serve(
    edge: &Edge,
    request: Request<Body>,
    note: &mut AccessNote,
) -> Result<Response<Body>, EdgeError> {
    let path = request.uri().path();
    if path.starts_with("/grpc.reflection.") || path.starts_with("/grpc.health.") {
        // Their services answer unknown methods themselves; only known ones are labelled.
        note.rpc = LOCAL_METHODS.contains(&path).then(|| path.to_owned());
        return edge
            .local_grpc
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| EdgeError::new(Code::Internal, e.to_string()));
    }
    let Some(rpc) = edge.routes.rpc(path) else {
        return Err(EdgeError::new(
            Code::Unimplemented,
            format!("unknown method {path}"),
        ));
    };
    note.rpc = Some(rpc.path.clone());
    // Deprecation, Sunset and a Link to the successor (RFC 9745, RFC 8594), on errors the
    // edge answers itself too: a client learns the method is going away whatever it got.
    let mut sunset = HeaderMap::new();
    rpc.mark_deprecation(&mut sunset, None);
    errors::with_headers(forward(edge, rpc, request, note).await, sunset)
}

/// Authorizes, limits and checks a call of `rpc`, then forwards it to its upstream.
async fn forward(
    edge: &Edge,
    rpc: &Rpc,
    request: Request<Body>,
    note: &mut AccessNote,
) -> Result<Response<Body>, EdgeError> {
    let principal = edge.auth.authorize(rpc.access, request.headers()).await?;
    note.user = principal
        .as_deref()
        .and_then(Principal::user_id)
        .map(str::to_owned);
    let key = edge.limit_key(
        rpc.class,
        principal.as_deref(),
        request.extensions().get::<ClientAddr>().copied(),
    );
    let verdict = edge.limiter.check(rpc.class, &key)?;
    // The body is not decoded on this path, except a login's or register's small message
    // for the account it names.
    let request = if ratelimit::client::names_account(rpc) {
        let time = Duration::from_millis(edge.settings.body_timeout_ms);
        let max = edge.settings.max_body_bytes;
        let (account, request) = ratelimit::client::grpc_account(rpc, request, max, time)
            .await
            .map_err(|e| e.with_headers(&verdict.headers))?;
        edge.limiter.check_account(account.as_deref())?;
        request
    } else {
        request
    };
    let deadline = edge.deadline(request.headers());
    let unavailable = || {
        EdgeError::new(
            Code::Unavailable,
            format!("{} is unavailable", rpc.upstream),
        )
    };
    let upstream = edge.upstreams.get(&rpc.upstream).ok_or_else(unavailable)?;
    // Unary calls are read whole to be checked against the contract, so a broken one costs
    // no upstream call; streams and compressed frames go through as they are.
    let request = if edge.settings.validate_requests {
        polyshop_platform::validate::layer::check_grpc(request, edge.settings.max_body_bytes)
            .await
            .map_err(|status| EdgeError::from(status).with_headers(&verdict.headers))?
    } else {
        request
    };
    crate::upstream::count_call(&rpc.upstream);

    let (mut parts, body) = request.into_parts();
    for name in &HOP_BY_HOP {
        parts.headers.remove(name);
    }
    parts.version = Version::HTTP_2;
    let millis = u64::try_from(deadline.as_millis())
        .unwrap_or(u64::MAX)
        .min(99_999_999);
    if let Ok(v) = HeaderValue::from_str(&format!("{millis}m")) {
        parts.headers.insert("grpc-timeout", v);
    }
    if let Some(p) = principal {
        parts.extensions.insert(Principal::clone(&p));
    }
    let body = Body::new(Streamed(Box::pin(Limited::new(
        body,
        edge.settings.max_body_bytes,
    ))));
    let forwarded = Request::from_parts(parts, body);
    let mut response = match tokio::time::timeout(deadline, upstream.oneshot(forwarded)).await {
        Err(_) => {
            return Err(EdgeError::new(
                Code::DeadlineExceeded,
                format!("{} did not answer in time", rpc.upstream),
            )
            .with_headers(&verdict.headers));
        }
        Ok(Err(e)) => {
            tracing::warn!(upstream = %rpc.upstream, error = %e, "upstream call failed");
            return Err(unavailable().with_headers(&verdict.headers));
        }
        Ok(Ok(response)) => response,
    };
    response.headers_mut().extend(verdict.headers);
    Ok(response)
}

/// A body that does not promise its length: grpc-web-text decoding shrinks the body, so the
/// original size hint would make the HTTP/2 client announce a wrong content-length.
struct Streamed<B>(Pin<Box<B>>);

impl<B: http_body::Body> http_body::Body for Streamed<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.0.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}
