//! The tower layer that checks each unary request against its contract's `buf.validate`
//! rules before the handler runs: it reads the one gRPC frame, decodes it as the method's
//! input type from the descriptor pool, and answers INVALID_ARGUMENT with a BadRequest when a
//! rule is broken; otherwise the handler gets the same bytes.
//!
//! Passed through unchecked, for the handler's own decode to answer: methods outside the
//! contracts (health, reflection), compressed frames, and bodies that are not exactly one
//! well-formed frame.

use std::{
    collections::HashMap,
    sync::OnceLock,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use prost_reflect::MessageDescriptor;
use tonic::{Status, body::Body};
use tower::{Layer, Service};

use super::violations_of_encoded;
use crate::{
    contract,
    status::{Violations, invalid_argument},
};

/// Largest request read for validation: tonic's default decoding limit plus the frame
/// header. A larger body is refused as tonic would refuse it.
const MAX_BODY: usize = 4 * 1024 * 1024 + 5;

/// How a context answers a request that breaks its contract: INVALID_ARGUMENT with its own
/// reason (`|v| status::invalid_argument(ErrorReason::InvalidArgument, v)`).
pub type Answer = fn(&Violations) -> Status;

/// How the context owning `package` (`polyshop.catalog.v1`) answers a broken contract: its
/// own `ErrorReason::InvalidArgument`, so a client sees the same ErrorInfo whether the edge
/// or the service refused the call. `None` for a package that serves no Polyshop RPC.
pub fn answer_for(package: &str) -> Option<Answer> {
    use polyshop::{admin, catalog, inventory, notification, order, payment, storefront, user};
    let answer: Answer = match package {
        "polyshop.admin.v1" => |v| invalid_argument(admin::v1::ErrorReason::InvalidArgument, v),
        // Version 2 answers with version 1's reasons: one ErrorReason per context.
        "polyshop.catalog.v1" | "polyshop.catalog.v2" => {
            |v| invalid_argument(catalog::v1::ErrorReason::InvalidArgument, v)
        }
        "polyshop.inventory.v1" => {
            |v| invalid_argument(inventory::v1::ErrorReason::InvalidArgument, v)
        }
        "polyshop.notification.v1" => {
            |v| invalid_argument(notification::v1::ErrorReason::InvalidArgument, v)
        }
        "polyshop.order.v1" => |v| invalid_argument(order::v1::ErrorReason::InvalidArgument, v),
        "polyshop.payment.v1" => |v| invalid_argument(payment::v1::ErrorReason::InvalidArgument, v),
        "polyshop.storefront.v1" => {
            |v| invalid_argument(storefront::v1::ErrorReason::InvalidArgument, v)
        }
        "polyshop.user.v1" => |v| invalid_argument(user::v1::ErrorReason::InvalidArgument, v),
        _ => return None,
    };
    Some(answer)
}

/// What a unary method of the contracts takes, and how its context refuses a broken one.
#[derive(Debug, Clone)]
pub struct Method {
    /// Its input type.
    pub input: MessageDescriptor,
    /// Its context's answer to violations.
    pub answer: Answer,
}

/// The contracts' unary methods, by gRPC path (`/polyshop.catalog.v1.CatalogService/GetProduct`).
pub fn methods() -> &'static HashMap<String, Method> {
    static METHODS: OnceLock<HashMap<String, Method>> = OnceLock::new();
    METHODS.get_or_init(|| {
        contract::pool()
            .services()
            .filter_map(|s| answer_for(s.package_name()).map(|answer| (s, answer)))
            .flat_map(|(s, answer)| {
                s.methods()
                    .filter(|m| !m.is_client_streaming())
                    .map(|m| {
                        (
                            format!("/{}/{}", s.full_name(), m.name()),
                            Method {
                                input: m.input(),
                                answer,
                            },
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}

/// Checks requests against their contract; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidateLayer;

impl ValidateLayer {
    /// The layer; builds the plans now, so a contract with an unsupported rule stops the
    /// start, not a call.
    pub fn new() -> Self {
        let _ = super::plans();
        Self
    }
}

impl<S> Layer<S> for ValidateLayer {
    type Service = ValidateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidateService { inner }
    }
}

/// See [`ValidateLayer`].
#[derive(Debug, Clone)]
pub struct ValidateService<S> {
    inner: S,
}

/// What the frame in `body` says, when it is one uncompressed frame.
fn single_frame(body: &[u8]) -> Option<&[u8]> {
    let (header, message) = body.split_at_checked(5)?;
    let len = u32::from_be_bytes(header[1..5].try_into().ok()?);
    (header[0] == 0 && usize::try_from(len).ok()? == message.len()).then_some(message)
}

impl<S, RB> Service<http::Request<Body>> for ValidateService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The ready inner service goes with this call; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !checked(&request) {
            return Box::pin(inner.call(request));
        }
        Box::pin(async move {
            match check_grpc(request, MAX_BODY).await {
                Ok(request) => inner.call(request).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// Whether [`check_grpc`] would look at `request`: a unary method of the contracts, sent
/// uncompressed.
pub fn checked<B>(request: &http::Request<B>) -> bool {
    methods().contains_key(request.uri().path())
        && request
            .headers()
            .get("grpc-encoding")
            .is_none_or(|e| e.as_bytes() == b"identity")
}

/// Reads a gRPC request's body (at most `max_body` bytes) and checks its one frame against
/// the method's contract: the request again, with the same bytes, or the context's
/// INVALID_ARGUMENT. What [`checked`] skips, and a body that is not exactly one well-formed
/// frame, goes on unread or unjudged for the handler's own decode to answer.
///
/// # Errors
/// The context's INVALID_ARGUMENT with a BadRequest; RESOURCE_EXHAUSTED for a body over
/// `max_body`; CANCELLED when the body fails.
pub async fn check_grpc(
    request: http::Request<Body>,
    max_body: usize,
) -> Result<http::Request<Body>, Status> {
    let Some(Method { input, answer }) = methods()
        .get(request.uri().path())
        .filter(|_| checked(&request))
        .cloned()
    else {
        return Ok(request);
    };
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match Limited::new(body, max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(Status::resource_exhausted("request message too large"));
        }
        Err(e) => return Err(Status::cancelled(format!("request body: {e}"))),
    };
    if let Some(violations) =
        single_frame(&bytes).and_then(|message| violations_of_encoded(&input, message))
        && !violations.is_empty()
    {
        return Err(answer(&violations));
    }
    Ok(http::Request::from_parts(
        parts,
        Body::new(Full::new(bytes)),
    ))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use polyshop::catalog::v1::{CreateProductRequest, GetProductRequest};
    use tonic::Code;
    use tonic_types::StatusExt as _;
    use tower::{ServiceExt as _, service_fn};

    use super::*;

    const CREATE: &str = "/polyshop.catalog.v1.CatalogService/CreateProduct";
    const GET: &str = "/polyshop.catalog.v1.CatalogService/GetProduct";

    fn frame(message: &impl prost::Message) -> Bytes {
        let bytes = message.encode_to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&bytes);
        Bytes::from(out)
    }

    fn request(path: &str, body: Bytes) -> http::Request<Body> {
        http::Request::builder()
            .uri(path)
            .header("content-type", "application/grpc")
            .body(Body::new(Full::new(body)))
            .unwrap_or_else(|e| panic!("request: {e}"))
    }

    /// A handler that echoes the body it received, so a test sees what got through.
    fn echo() -> impl Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        service_fn(|request: http::Request<Body>| async move {
            let bytes = request
                .into_body()
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            Ok::<_, Infallible>(http::Response::new(Body::new(Full::new(bytes))))
        })
    }

    fn layer() -> ValidateLayer {
        ValidateLayer::new()
    }

    async fn body_of(response: http::Response<Body>) -> Bytes {
        response
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default()
    }

    fn grpc_status(response: &http::Response<Body>) -> Option<Status> {
        Status::from_header_map(response.headers())
    }

    #[tokio::test]
    async fn a_request_breaking_its_contract_is_refused_before_the_handler() {
        let invalid = GetProductRequest {
            product_id: String::new(),
        };
        let response = layer()
            .layer(echo())
            .oneshot(request(GET, frame(&invalid)))
            .await
            .unwrap_or_else(|e| match e {});
        let status = grpc_status(&response).expect("a grpc-status in the headers");
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("a BadRequest detail");
        assert_eq!(bad.field_violations.len(), 1);
        assert_eq!(bad.field_violations[0].field, "product_id");
        assert_eq!(bad.field_violations[0].description, "is required");
        assert!(
            body_of(response).await.is_empty(),
            "the handler did not run"
        );
    }

    #[tokio::test]
    async fn a_valid_request_reaches_the_handler_with_the_same_bytes() {
        let valid = CreateProductRequest {
            name: "Mug".into(),
            category: "kitchen".into(),
            price: Some(polyshop::api::v1::Money {
                amount_minor: 100,
                currency_code: "EUR".into(),
            }),
            ..Default::default()
        };
        let sent = frame(&valid);
        let response = layer()
            .layer(echo())
            .oneshot(request(CREATE, sent.clone()))
            .await
            .unwrap_or_else(|e| match e {});
        assert!(grpc_status(&response).is_none());
        assert_eq!(body_of(response).await, sent);
    }

    #[tokio::test]
    async fn other_paths_compressed_frames_and_garbage_pass_through() {
        let invalid = frame(&GetProductRequest::default());
        for (path, body, compressed) in [
            ("/grpc.health.v1.Health/Check", invalid.clone(), false),
            (GET, invalid.clone(), true),
            (GET, Bytes::from_static(b"\x00\x00\x00\x00\x09oops"), false),
        ] {
            let mut request = request(path, body.clone());
            if compressed {
                request
                    .headers_mut()
                    .insert("grpc-encoding", http::HeaderValue::from_static("gzip"));
            }
            let response = layer()
                .layer(echo())
                .oneshot(request)
                .await
                .unwrap_or_else(|e| match e {});
            assert_eq!(
                body_of(response).await,
                body,
                "{path} compressed={compressed}"
            );
        }
    }

    #[test]
    fn every_polyshop_service_has_an_answer_in_its_own_domain() {
        for service in contract::pool()
            .services()
            .filter(|s| s.package_name().starts_with("polyshop."))
        {
            let answer = answer_for(service.package_name())
                .unwrap_or_else(|| panic!("no answer for {}", service.full_name()));
            let status = answer(&Violations::new());
            let info = status.get_error_details().error_info().cloned();
            // Every version of a context answers in its domain: `polyshop.<context>`.
            let context = service.package_name().split('.').nth(1).unwrap_or_default();
            let domain = format!("polyshop.{context}");
            assert_eq!(
                info.map(|i| (i.reason, i.domain)),
                Some(("INVALID_ARGUMENT".to_owned(), domain)),
                "{}",
                service.full_name()
            );
        }
    }

    #[test]
    fn frames_are_read_only_when_whole_and_uncompressed() {
        assert_eq!(single_frame(b"\x00\x00\x00\x00\x02ab"), Some(&b"ab"[..]));
        assert_eq!(single_frame(b"\x01\x00\x00\x00\x02ab"), None);
        assert_eq!(single_frame(b"\x00\x00\x00\x00\x03ab"), None);
        assert_eq!(single_frame(b"\x00\x00"), None);
    }
}
