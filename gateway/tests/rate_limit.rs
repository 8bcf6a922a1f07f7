//! Rate limits at the edge: the configured burst passes, the next call gets 429 with
//! Retry-After and the RateLimit headers; gRPC callers get RESOURCE_EXHAUSTED with RetryInfo.
#![allow(clippy::unwrap_used)]

mod common;

use common::start;
use http::StatusCode;
use polyshop::catalog::v1::{ListProductsRequest, catalog_service_client::CatalogServiceClient};
use polyshop_platform::testing;
use serde_json::json;
use tonic_types::StatusExt;

#[tokio::test]
async fn the_burst_passes_and_the_next_request_is_429_with_retry_after() {
    let system = start(|s| {
        s.gateway.rate_per_sec = 1;
        s.gateway.rate_burst = 5;
        s.gateway.auth_rate_per_sec = 1;
        s.gateway.auth_rate_burst = 2;
    })
    .await;
    for i in 0..5 {
        let r = system.get("/v1/products", None).await;
        assert_eq!(r.status, StatusCode::OK, "request {i} is within the burst");
        assert!(r.headers.contains_key("ratelimit"));
    }
    let limited = system.get("/v1/products", None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["error"]["status"], "RESOURCE_EXHAUSTED");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert!(
        limited.headers["ratelimit-policy"]
            .to_str()
            .unwrap()
            .contains("q=5")
    );

    // gRPC shares the bucket: RESOURCE_EXHAUSTED with RetryInfo.
    let mut client = CatalogServiceClient::new(testing::channel(system.gateway));
    let status = client
        .list_products(ListProductsRequest::default())
        .await
        .expect_err("limited");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.get_details_retry_info().is_some());

    // Login and register have their own, stricter bucket.
    for _ in 0..2 {
        let r = system
            .post(
                "/v1/auth/login",
                None,
                json!({"login": "nobody", "password": "wrong password!"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    }
    let r = system
        .post(
            "/v1/auth/login",
            None,
            json!({"login": "nobody", "password": "wrong password!"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
    system.stop().await;
}
