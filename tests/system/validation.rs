//! One request per context that breaks its contract's `buf.validate` rules, sent straight to
//! the service over gRPC and through the edge as JSON, gRPC and grpc-web: every answer is
//! INVALID_ARGUMENT with the context's ErrorInfo and the same field violations, and the edge's
//! upstream call counter does not move for any of the edge's three.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use polyshop::{
    catalog::v1::ListProductsRequest, inventory::v1::SetStockRequest,
    notification::v1::ListNotificationsRequest, order::v1::CreateOrderRequest,
    payment::v1::ListPaymentsRequest, user::v1::RegisterRequest,
};
use prost::Message;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

use crate::harness::System;

/// What a refusal says: ErrorInfo (reason, domain) and the (field, description) pairs.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    info: (String, String),
    violations: Vec<(String, String)>,
}

/// One context's invalid request, in both forms.
struct Case {
    /// `CATALOG`, … (the service's URL in the harness).
    service: &'static str,
    grpc_path: &'static str,
    message: Vec<u8>,
    /// HTTP method, path and body of the same request through the JSON routes.
    http: (&'static str, String, Option<Value>),
    /// Whether it needs the admin's token (else the customer's).
    admin: bool,
}

fn cases(product_id: &str) -> Vec<Case> {
    vec![
        Case {
            service: "USER",
            grpc_path: "/polyshop.user.v1.UserService/Register",
            message: RegisterRequest {
                username: "a!".into(),
                email: "not-an-email".into(),
                password: "long enough password".into(),
                display_name: String::new(),
            }
            .encode_to_vec(),
            http: (
                "POST",
                "/v1/users".into(),
                Some(
                    json!({"username": "a!", "email": "not-an-email", "password": "long enough password"}),
                ),
            ),
            admin: false,
        },
        Case {
            service: "CATALOG",
            grpc_path: "/polyshop.catalog.v1.CatalogService/ListProducts",
            message: ListProductsRequest {
                page_size: 1000,
                category: "Not A Slug".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            http: (
                "GET",
                "/v1/products?pageSize=1000&category=Not%20A%20Slug".into(),
                None,
            ),
            admin: false,
        },
        Case {
            service: "INVENTORY",
            grpc_path: "/polyshop.inventory.v1.InventoryService/SetStock",
            message: SetStockRequest {
                product_id: product_id.into(),
                quantity_on_hand: -5,
            }
            .encode_to_vec(),
            http: (
                "PUT",
                format!("/v1/stock/{product_id}"),
                Some(json!({"quantityOnHand": -5})),
            ),
            admin: true,
        },
        Case {
            service: "ORDER",
            grpc_path: "/polyshop.order.v1.OrderService/CreateOrder",
            message: CreateOrderRequest {
                idempotency_key: "validation-test".into(),
                payment_method_token: "tok_visa".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            http: (
                "POST",
                "/v1/orders".into(),
                Some(
                    json!({"idempotencyKey": "validation-test", "paymentMethodToken": "tok_visa"}),
                ),
            ),
            admin: false,
        },
        Case {
            service: "PAYMENT",
            grpc_path: "/polyshop.payment.v1.PaymentService/ListPayments",
            message: ListPaymentsRequest {
                page_size: -1,
                page_token: "not a token!".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            http: (
                "GET",
                "/v1/payments?pageSize=-1&pageToken=not%20a%20token!".into(),
                None,
            ),
            admin: false,
        },
        Case {
            service: "NOTIFICATION",
            grpc_path: "/polyshop.notification.v1.NotificationService/ListNotifications",
            message: ListNotificationsRequest {
                page_size: 101,
                ..Default::default()
            }
            .encode_to_vec(),
            http: ("GET", "/v1/notifications?pageSize=101".into(), None),
            admin: false,
        },
    ]
}

/// A gRPC frame holding `message`.
fn frame(message: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(0);
    b.put_u32(u32::try_from(message.len()).expect("small"));
    b.put_slice(message);
    b.freeze()
}

fn refusal_of_status(status: &tonic::Status) -> Refusal {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("an ErrorInfo");
    let bad = details.bad_request().expect("a BadRequest");
    Refusal {
        info: (info.reason.clone(), info.domain.clone()),
        violations: bad
            .field_violations
            .iter()
            .map(|v| (v.field.clone(), v.description.clone()))
            .collect(),
    }
}

/// The already encoded `message` to `path` at `url` over gRPC; the status it was refused with.
async fn grpc_refusal(url: &str, path: &'static str, token: &str, message: &[u8]) -> Refusal {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(Bytes::copy_from_slice(message));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let answer = grpc
        .unary::<Bytes, Bytes, _>(
            request,
            http::uri::PathAndQuery::from_static(path),
            polyshop_gateway::codec::RawCodec,
        )
        .await;
    refusal_of_status(&answer.expect_err("refused"))
}

/// One HTTP/1.1 request to the edge: status, headers and body.
async fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (u16, http::HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Full::new(body)).expect("request"))
        .await
        .expect("the edge answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status.as_u16(), parts.headers, body)
}

/// The JSON error body's ErrorInfo and BadRequest.
fn refusal_of_json(body: &[u8]) -> Refusal {
    let body: Value = serde_json::from_slice(body).expect("a JSON error");
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT", "{body}");
    let details = body["error"]["details"].as_array().expect("details");
    let of_type = |suffix: &str| {
        details
            .iter()
            .find(|d| d["@type"].as_str().is_some_and(|t| t.ends_with(suffix)))
            .unwrap_or_else(|| panic!("a {suffix} in {body}"))
    };
    let info = of_type("google.rpc.ErrorInfo");
    let bad = of_type("google.rpc.BadRequest");
    Refusal {
        info: (
            info["reason"].as_str().expect("reason").to_owned(),
            info["domain"].as_str().expect("domain").to_owned(),
        ),
        violations: bad["fieldViolations"]
            .as_array()
            .expect("fieldViolations")
            .iter()
            .map(|v| {
                (
                    v["field"].as_str().expect("field").to_owned(),
                    v["description"].as_str().expect("description").to_owned(),
                )
            })
            .collect(),
    }
}

/// The status of a grpc-web answer: from the headers when trailers-only, else from the
/// trailer frame at the end of the body.
fn refusal_of_grpc_web(headers: &http::HeaderMap, mut body: Bytes) -> Refusal {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        if name.as_str().starts_with("grpc-") {
            map.insert(name.clone(), value.clone());
        }
    }
    while body.remaining() >= 5 {
        let flag = body.get_u8();
        let len = usize::try_from(body.get_u32()).expect("fits");
        let chunk = body.split_to(len);
        if flag & 0x80 != 0 {
            for line in String::from_utf8_lossy(&chunk).split("\r\n") {
                if let Some((name, value)) = line.split_once(':')
                    && let (Ok(name), Ok(value)) = (
                        http::HeaderName::from_bytes(name.trim().as_bytes()),
                        http::HeaderValue::from_str(value.trim()),
                    )
                {
                    map.insert(name, value);
                }
            }
        }
    }
    refusal_of_status(&tonic::Status::from_header_map(&map).expect("a grpc-status"))
}

/// `polyshop_edge_upstream_calls_total`, summed over upstreams, from the edge's `/metrics`.
async fn upstream_calls(edge: &str) -> f64 {
    let (_, _, body) = http("GET", &format!("{edge}/metrics"), &[], Bytes::new()).await;
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with("polyshop_edge_upstream_calls_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn every_context_refuses_a_broken_contract_alike_directly_and_at_the_edge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let system = System::up(dir.path(), System::environment(dir.path())).await;
    let customer = system.signup("valerie").await;
    let admin = system.login("admin", &system.admin_password()).await;
    let product = system.first_product().await.product_id;
    let edge = system.url("GATEWAY");
    let bearer = |token: &str| format!("Bearer {token}");

    // The counter exists once any call went upstream (the sign-up above went direct).
    let customer_auth = bearer(&customer);
    let (status, _, _) = http(
        "GET",
        &format!("{edge}/v1/products/{product}"),
        &[("authorization", &customer_auth)],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 200);
    let before = upstream_calls(&edge).await;
    assert!(before >= 1.0, "the edge counts its upstream calls");

    for case in cases(&product) {
        let token = if case.admin { &admin } else { &customer };
        let auth = bearer(token);
        let direct = grpc_refusal(
            &system.url(case.service),
            case.grpc_path,
            token,
            &case.message,
        )
        .await;
        assert!(
            !direct.violations.is_empty(),
            "{}: the service names the fields",
            case.service
        );
        assert_eq!(
            direct.info,
            (
                "INVALID_ARGUMENT".to_owned(),
                format!("polyshop.{}", case.service.to_ascii_lowercase())
            ),
            "{}: the context's reason and domain",
            case.service
        );

        let via_grpc = grpc_refusal(&edge, case.grpc_path, token, &case.message).await;
        assert_eq!(via_grpc, direct, "{}: gRPC through the edge", case.service);

        let (method, path, body) = &case.http;
        let body = body
            .as_ref()
            .map(|b| Bytes::from(b.to_string()))
            .unwrap_or_default();
        let (status, _, body) = http(
            method,
            &format!("{edge}{path}"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
        assert_eq!(status, 400, "{}: JSON through the edge", case.service);
        assert_eq!(
            refusal_of_json(&body),
            direct,
            "{}: JSON through the edge",
            case.service
        );

        let (status, headers, body) = http(
            "POST",
            &format!("{edge}{}", case.grpc_path),
            &[
                ("authorization", &auth),
                ("content-type", "application/grpc-web+proto"),
                ("x-grpc-web", "1"),
            ],
            frame(&case.message),
        )
        .await;
        assert_eq!(status, 200, "{}: grpc-web answers in-band", case.service);
        assert_eq!(
            refusal_of_grpc_web(&headers, body),
            direct,
            "{}: grpc-web through the edge",
            case.service
        );
    }
    assert_eq!(
        upstream_calls(&edge).await,
        before,
        "no refused request reached a context"
    );

    // A valid request still goes upstream, and is counted.
    let (status, _, _) = http(
        "GET",
        &format!("{edge}/v1/notifications?pageSize=100"),
        &[("authorization", &customer_auth)],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(upstream_calls(&edge).await, before + 1.0);
    assert!(system.stop().await);
}
