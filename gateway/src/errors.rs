//! The edge's one error type and its two wire forms: a gRPC status (trailers-only response)
//! and Google's JSON error shape with the canonical gRPC → HTTP table, carrying the
//! `google.rpc` details (ErrorInfo, BadRequest field violations, RetryInfo, …) to the client.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};
use tonic::{Code, Status, body::Body};
use tonic_types::{ErrorDetail, ErrorDetails, StatusExt};

/// An error answered by the edge itself, or an upstream status on its way to the client.
#[derive(Debug)]
pub struct EdgeError {
    status: Status,
    http: Option<StatusCode>,
    headers: HeaderMap,
}

impl From<Status> for EdgeError {
    fn from(status: Status) -> Self {
        Self {
            status,
            http: None,
            headers: HeaderMap::new(),
        }
    }
}

/// Adds `headers` to an answer, whether it is a response or an error.
///
/// # Errors
/// `answer`'s error, with the headers.
pub fn with_headers<B>(
    answer: Result<http::Response<B>, EdgeError>,
    headers: HeaderMap,
) -> Result<http::Response<B>, EdgeError> {
    match answer {
        Ok(mut response) => {
            response.headers_mut().extend(headers);
            Ok(response)
        }
        Err(e) => Err(e.with_headers(&headers)),
    }
}

impl EdgeError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status::new(code, message).into()
    }

    /// INVALID_ARGUMENT naming the reason.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// NOT_FOUND.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// 401 with `WWW-Authenticate: Bearer` (RFC 6750); `why` is `None` for a missing token.
    pub fn unauthenticated(why: Option<&str>) -> Self {
        let (message, challenge) = match why {
            None => (
                "an access token is required".to_owned(),
                "Bearer realm=\"polyshop\"".to_owned(),
            ),
            Some(why) => (
                format!("invalid access token: {why}"),
                format!(
                    "Bearer realm=\"polyshop\", error=\"invalid_token\", error_description=\"{why}\""
                ),
            ),
        };
        Self::new(Code::Unauthenticated, message).with_header(header::WWW_AUTHENTICATE, &challenge)
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        let mut e = Self::new(
            Code::InvalidArgument,
            format!("request body is larger than {limit} bytes"),
        );
        e.http = Some(StatusCode::PAYLOAD_TOO_LARGE);
        e
    }

    /// 408: the body did not arrive within `limit`.
    pub fn body_too_slow(limit: Duration) -> Self {
        Self::new(
            Code::DeadlineExceeded,
            format!(
                "the request body did not arrive within {} ms",
                limit.as_millis()
            ),
        )
        .with_http(StatusCode::REQUEST_TIMEOUT)
    }

    /// 405 with `Allow`.
    pub fn method_not_allowed(allowed: &[http::Method]) -> Self {
        let allow: Vec<&str> = allowed.iter().map(http::Method::as_str).collect();
        let mut e = Self::new(Code::Unimplemented, "method not allowed on this path")
            .with_header(header::ALLOW, &allow.join(", "));
        e.http = Some(StatusCode::METHOD_NOT_ALLOWED);
        e
    }

    /// RESOURCE_EXHAUSTED with RetryInfo and `Retry-After`.
    pub fn rate_limited(retry_after: Duration, headers: HeaderMap) -> Self {
        let details = ErrorDetails::with_retry_info(Some(retry_after));
        let status = Status::with_error_details(
            Code::ResourceExhausted,
            "rate limit exceeded; retry later",
            details,
        );
        let mut e = Self::from(status);
        e.headers = headers;
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        e.with_header(header::RETRY_AFTER, &secs.max(1).to_string())
    }

    /// Answers JSON clients with `status` instead of the canonical mapping.
    #[must_use]
    pub fn with_http(mut self, status: StatusCode) -> Self {
        self.http = Some(status);
        self
    }

    /// Adds a response header (ignored when the value is not a valid header value).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    /// Adds response headers.
    #[must_use]
    pub fn with_headers(mut self, headers: &HeaderMap) -> Self {
        for (k, v) in headers {
            self.headers.insert(k.clone(), v.clone());
        }
        self
    }

    /// The gRPC code.
    pub fn code(&self) -> Code {
        self.status.code()
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        self.status.message()
    }

    /// The `google.rpc` details in proto3 JSON form, as the JSON error shape carries them.
    pub fn details_json(&self) -> Vec<Value> {
        self.status
            .get_error_details_vec()
            .iter()
            .filter_map(detail_json)
            .collect()
    }

    /// The HTTP status this error is answered with over JSON.
    pub fn http_status(&self) -> StatusCode {
        self.http.unwrap_or_else(|| http_status(self.status.code()))
    }

    /// As a gRPC trailers-only response.
    pub fn into_grpc(self) -> http::Response<Body> {
        let mut response = self.status.into_http::<Body>();
        for (k, v) in &self.headers {
            if k != header::WWW_AUTHENTICATE && k != header::ALLOW {
                response.headers_mut().insert(k.clone(), v.clone());
            }
        }
        response
    }

    /// As Google's JSON error: `{"error": {code, status, message, details}}`.
    pub fn into_json(self) -> http::Response<Body> {
        let http = self.http_status();
        let mut headers = self.headers;
        if self.status.code() == Code::Unauthenticated
            && !headers.contains_key(header::WWW_AUTHENTICATE)
        {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"polyshop\""),
            );
        }
        let details = self.status.get_error_details_vec();
        if !headers.contains_key(header::RETRY_AFTER)
            && let Some(delay) = details.iter().find_map(|d| match d {
                ErrorDetail::RetryInfo(r) => r.retry_delay,
                _ => None,
            })
        {
            let secs = delay.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        let body = json!({
            "error": {
                "code": http.as_u16(),
                "status": code_name(self.status.code()),
                "message": self.status.message(),
                "details": details.iter().filter_map(detail_json).collect::<Vec<_>>(),
            }
        });
        let mut response = json_response(http, body.to_string().into());
        response.headers_mut().extend(headers);
        response
    }
}

/// A JSON response with `status` and `body`.
pub fn json_response(status: StatusCode, body: Bytes) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Google's canonical mapping of gRPC codes to HTTP statuses (`google/rpc/code.proto`).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The canonical upper-case name of a code (`INVALID_ARGUMENT`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

const TYPE_PREFIX: &str = "type.googleapis.com/google.rpc.";

fn typed(name: &str, mut fields: Map<String, Value>) -> Value {
    fields.insert(
        "@type".into(),
        Value::String(format!("{TYPE_PREFIX}{name}")),
    );
    Value::Object(fields)
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// One detail in proto3 JSON form. DebugInfo is internal and never leaves the edge.
fn detail_json(detail: &ErrorDetail) -> Option<Value> {
    Some(match detail {
        ErrorDetail::ErrorInfo(i) => typed(
            "ErrorInfo",
            object(json!({"reason": i.reason, "domain": i.domain, "metadata": i.metadata})),
        ),
        ErrorDetail::BadRequest(b) => typed(
            "BadRequest",
            object(
                json!({"fieldViolations": b.field_violations.iter().map(|v| json!({
                "field": v.field, "description": v.description, "reason": v.reason,
            })).collect::<Vec<_>>()}),
            ),
        ),
        ErrorDetail::RetryInfo(r) => {
            let delay = r.retry_delay.unwrap_or_default();
            typed(
                "RetryInfo",
                object(
                    json!({"retryDelay": format!("{}.{:03}s", delay.as_secs(), delay.subsec_millis())}),
                ),
            )
        }
        ErrorDetail::QuotaFailure(q) => typed(
            "QuotaFailure",
            object(json!({"violations": q.violations.iter().map(|v| json!({
                "subject": v.subject, "description": v.description,
            })).collect::<Vec<_>>()})),
        ),
        ErrorDetail::PreconditionFailure(p) => typed(
            "PreconditionFailure",
            object(json!({"violations": p.violations.iter().map(|v| json!({
                "type": v.r#type, "subject": v.subject, "description": v.description,
            })).collect::<Vec<_>>()})),
        ),
        ErrorDetail::RequestInfo(r) => typed(
            "RequestInfo",
            object(json!({"requestId": r.request_id, "servingData": r.serving_data})),
        ),
        ErrorDetail::ResourceInfo(r) => typed(
            "ResourceInfo",
            object(json!({
                "resourceType": r.resource_type, "resourceName": r.resource_name,
                "owner": r.owner, "description": r.description,
            })),
        ),
        ErrorDetail::Help(h) => typed(
            "Help",
            object(json!({"links": h.links.iter().map(|l| json!({
                "description": l.description, "url": l.url,
            })).collect::<Vec<_>>()})),
        ),
        ErrorDetail::LocalizedMessage(m) => typed(
            "LocalizedMessage",
            object(json!({"locale": m.locale, "message": m.message})),
        ),
        // DebugInfo, and kinds added later, stay inside.
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tonic_types::FieldViolation;

    async fn body_json(response: http::Response<Body>) -> Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn the_canonical_table_maps_every_code() {
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(Code::PermissionDenied), StatusCode::FORBIDDEN);
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::Aborted), StatusCode::CONFLICT);
        assert_eq!(http_status(Code::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(
            http_status(Code::ResourceExhausted),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            http_status(Code::Unimplemented),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            http_status(Code::DeadlineExceeded),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(http_status(Code::Cancelled).as_u16(), 499);
    }

    #[tokio::test]
    async fn field_violations_reach_the_json_body() {
        let mut details = ErrorDetails::with_error_info("INVALID_ARGUMENT", "polyshop.user", []);
        details.set_bad_request(vec![FieldViolation::new(
            "email",
            "is not an email address",
        )]);
        let status = Status::with_error_details(Code::InvalidArgument, "invalid request", details);
        let response = EdgeError::from(status).into_json();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = body_json(response).await;
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        let details = body["error"]["details"].as_array().expect("details");
        let bad = details
            .iter()
            .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
            .expect("bad request detail");
        assert_eq!(bad["fieldViolations"][0]["field"], "email");
    }

    #[tokio::test]
    async fn rate_limits_carry_retry_after_in_both_forms() {
        let e = EdgeError::rate_limited(Duration::from_millis(1500), HeaderMap::new());
        let response = e.into_json();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let grpc = EdgeError::rate_limited(Duration::from_secs(1), HeaderMap::new()).into_grpc();
        assert_eq!(grpc.headers()["grpc-status"], "8");
    }

    #[test]
    fn unauthenticated_challenges_with_bearer() {
        let response = EdgeError::unauthenticated(None).into_json();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii");
        assert!(challenge.starts_with("Bearer"));
    }
}
