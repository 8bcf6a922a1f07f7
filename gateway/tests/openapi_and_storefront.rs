//! The generated OpenAPI document, the storefront's degraded answers, deadlines and load
//! shedding.
#![allow(clippy::unwrap_used)]

mod common;

use common::{PASSWORD, start, status_name};
use http::{Method, StatusCode};
use polyshop_gateway::routes::RouteTable;
use serde_json::json;

#[tokio::test]
async fn openapi_lists_every_route_with_schemas_and_bearer_security() {
    let system = start(|_| {}).await;
    let doc = system.get("/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = RouteTable::from_pool(polyshop_platform::contract::pool()).unwrap();
    let mut count = 0;
    for route in routes.http_routes() {
        let op = &doc["paths"][route.template.openapi_path()]
            [route.method.as_str().to_ascii_lowercase()];
        assert!(
            op["responses"]["200"].is_object(),
            "{} {}",
            route.method,
            route.pattern
        );
        assert!(op["responses"]["401"].is_object());
        count += 1;
    }
    assert!(count >= 30, "{count} routes");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    let register = &doc["paths"]["/v1/users"]["post"];
    let body = &register["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["properties"]["password"]["type"], "string");
    assert!(
        body["properties"]["password"]["description"]
            .as_str()
            .unwrap()
            .contains("12")
    );
    assert!(doc["paths"]["/.well-known/jwks.json"]["get"].is_object());
    assert!(doc["paths"]["/v1/orders/{order_id}:cancel"]["post"].is_object());
    system.stop().await;
}

#[tokio::test]
async fn the_dashboard_degrades_when_order_and_notification_are_down() {
    let system = start(|_| {}).await;
    let (user_id, token) = system.sign_up("hana").await;
    let dash = system
        .get("/v1/dashboard?recent_limit=3", Some(&token))
        .await;
    assert_eq!(dash.status, StatusCode::OK, "{:?}", dash.body);
    assert_eq!(dash.body["profile"]["userId"], user_id.as_str());
    assert_eq!(dash.body["degraded"], json!(["orders", "notifications"]));
    assert_eq!(dash.body["recentOrders"], json!([]));

    let bad = system
        .get("/v1/dashboard?recent_limit=99", Some(&token))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.body["error"]["details"][1]["fieldViolations"][0]["field"],
        "recent_limit"
    );

    // Order details need the order itself: with the order service down that is a 503.
    let details = system.get("/v1/orders/o-1/details", Some(&token)).await;
    assert_eq!(
        details.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        details.body
    );
    system.stop().await;
}

#[tokio::test]
async fn deadlines_are_504_and_an_overloaded_edge_sheds_with_503() {
    let system = start(|s| s.gateway.max_concurrency = 1).await;
    let slow = system
        .raw(
            Method::GET,
            "/v1/products",
            &[("grpc-timeout", "1n")],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT, "{:?}", slow.body);
    assert_eq!(status_name(&slow), "DEADLINE_EXCEEDED");

    system
        .post(
            "/v1/users",
            None,
            json!({"username": "ivan", "email": "ivan@example.com", "password": PASSWORD}),
        )
        .await;
    let logins = (0..12).map(|_| {
        system.post(
            "/v1/auth/login",
            None,
            json!({"login": "ivan", "password": PASSWORD}),
        )
    });
    let answers = futures::future::join_all(logins).await;
    let shed = answers
        .iter()
        .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    let ok = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    assert!(shed > 0 && ok > 0, "shed {shed}, ok {ok}");
    assert!(
        answers
            .iter()
            .all(|a| a.status == StatusCode::OK || a.status == StatusCode::SERVICE_UNAVAILABLE)
    );
    system.stop().await;
}
