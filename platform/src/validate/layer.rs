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
use crate::{contract, status::Violations};

/// Largest request read for validation: tonic's default decoding limit plus the frame
/// header. A larger body is refused as tonic would refuse it.
const MAX_BODY: usize = 4 * 1024 * 1024 + 5;

/// How a server answers a request that breaks its contract: INVALID_ARGUMENT with its own
/// context's reason (`|v| status::invalid_argument(ErrorReason::InvalidArgument, v)`).
pub type Answer = fn(&Violations) -> Status;

/// Input types of the contracts' unary methods, by gRPC path.
fn inputs() -> &'static HashMap<String, MessageDescriptor> {
    static INPUTS: OnceLock<HashMap<String, MessageDescriptor>> = OnceLock::new();
    INPUTS.get_or_init(|| {
        contract::pool()
            .services()
            .filter(|s| s.package_name().starts_with("polyshop."))
            .flat_map(|s| s.methods().collect::<Vec<_>>())
            .filter(|m| !m.is_client_streaming())
            .map(|m| {
                (
                    format!("/{}/{}", m.parent_service().full_name(), m.name()),
                    m.input(),
                )
            })
            .collect()
    })
}

/// Checks requests against their contract; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct ValidateLayer(Answer);

impl ValidateLayer {
    /// A layer answering violations with `answer`.
    pub fn new(answer: Answer) -> Self {
        // Build the plans now, so a contract with an unsupported rule stops the start, not a call.
        let _ = super::plans();
        Self(answer)
    }
}

impl<S> Layer<S> for ValidateLayer {
    type Service = ValidateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidateService {
            answer: self.0,
            inner,
        }
    }
}

/// See [`ValidateLayer`].
#[derive(Debug, Clone)]
pub struct ValidateService<S> {
    answer: Answer,
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
        let answer = self.answer;
        let input = inputs().get(request.uri().path()).cloned();
        let compressed = request
            .headers()
            .get("grpc-encoding")
            .is_some_and(|e| e.as_bytes() != b"identity");
        let Some(input) = input.filter(|_| !compressed) else {
            return Box::pin(inner.call(request));
        };
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes: Bytes = match Limited::new(body, MAX_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    let status = if e
                        .downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        Status::resource_exhausted("request message too large")
                    } else {
                        Status::cancelled(format!("request body: {e}"))
                    };
                    return Ok(status.into_http());
                }
            };
            if let Some(violations) =
                single_frame(&bytes).and_then(|message| violations_of_encoded(&input, message))
                && !violations.is_empty()
            {
                return Ok(answer(&violations).into_http());
            }
            inner
                .call(http::Request::from_parts(
                    parts,
                    Body::new(Full::new(bytes)),
                ))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use polyshop::catalog::v1::{CreateProductRequest, ErrorReason, GetProductRequest};
    use tonic::Code;
    use tonic_types::StatusExt as _;
    use tower::{ServiceExt as _, service_fn};

    use super::*;
    use crate::status::invalid_argument;

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
        ValidateLayer::new(|v| invalid_argument(ErrorReason::InvalidArgument, v))
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
    fn frames_are_read_only_when_whole_and_uncompressed() {
        assert_eq!(single_frame(b"\x00\x00\x00\x00\x02ab"), Some(&b"ab"[..]));
        assert_eq!(single_frame(b"\x01\x00\x00\x00\x02ab"), None);
        assert_eq!(single_frame(b"\x00\x00\x00\x00\x03ab"), None);
        assert_eq!(single_frame(b"\x00\x00"), None);
    }
}
