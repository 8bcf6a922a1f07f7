//! JSON transcoding through the edge against real user, catalog and inventory servers.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{System, start, status_name};
use http::{Method, StatusCode};
use serde_json::{Value, json};

async fn products(system: &System, n: usize) -> (String, Vec<String>) {
    let admin = system.admin_token().await;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            system
                .create_product(&admin, &format!("Kettle {i}"), 1999 + i as i64)
                .await,
        );
    }
    (admin, ids)
}

#[tokio::test]
async fn register_login_list_products_paged_and_get_one() {
    let system = start(|_| {}).await;
    let (_, ids) = products(&system, 3).await;
    let (user_id, token) = system.sign_up("alice").await;
    assert!(!user_id.is_empty() && !token.is_empty());

    let page = system.get("/v1/products?page_size=2", None).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    assert_eq!(page.body["products"].as_array().unwrap().len(), 2);
    let next = page.body["nextPageToken"].as_str().unwrap();
    assert!(!next.is_empty());
    let rest = system
        .get(&format!("/v1/products?pageSize=2&pageToken={next}"), None)
        .await;
    assert_eq!(rest.status, StatusCode::OK, "{:?}", rest.body);
    assert_eq!(rest.body["products"].as_array().unwrap().len(), 1);

    let one = system
        .get(&format!("/v1/products/{}", ids[0]), Some(&token))
        .await;
    assert_eq!(one.status, StatusCode::OK, "{:?}", one.body);
    let product = &one.body["product"];
    assert_eq!(product["productId"], ids[0].as_str());
    assert_eq!(
        product["price"]["amountMinor"], "1999",
        "int64 travels as a string"
    );
    assert_eq!(product["price"]["currencyCode"], "EUR");
    assert!(one.headers.contains_key("x-request-id"));
    assert!(one.headers.contains_key("ratelimit-policy"));

    let missing = system
        .get("/v1/products/0190f2d6-0000-7000-8000-000000000000", None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{:?}", missing.body);
    assert_eq!(status_name(&missing), "NOT_FOUND");
    system.stop().await;
}

#[tokio::test]
async fn path_query_and_body_map_onto_the_request_with_proto3_json() {
    let system = start(|_| {}).await;
    let (_, ids) = products(&system, 2).await;
    let (user_id, token) = system.sign_up("bob").await;

    // Enum names and repeated enums out.
    let me = system
        .get(&format!("/v1/users/{user_id}"), Some(&token))
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["user"]["status"], "USER_STATUS_ACTIVE");
    assert_eq!(me.body["user"]["roles"], json!(["ROLE_CUSTOMER"]));

    // body "*" plus a path variable; proto names are accepted in, lowerCamel comes out.
    let patched = system
        .call(
            Method::PATCH,
            &format!("/v1/users/{user_id}"),
            Some(&token),
            Some(json!({"display_name": "Bobby"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(patched.body["user"]["displayName"], "Bobby");

    // body: "address" binds one field.
    let address = json!({"recipient": "Bob", "line1": "Main St 1", "city": "Berlin", "postalCode": "10115", "countryCode": "DE"});
    let added = system
        .post(
            &format!("/v1/users/{user_id}/addresses"),
            Some(&token),
            address,
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{:?}", added.body);
    assert_eq!(added.body["address"]["city"], "Berlin");

    // Repeated query parameters and a custom verb.
    let batch = system
        .get(
            &format!(
                "/v1/products:batchGet?product_ids={}&product_ids=nope",
                ids[1]
            ),
            None,
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{:?}", batch.body);
    assert_eq!(batch.body["products"][0]["productId"], ids[1].as_str());

    // An additional binding.
    let jwks = system.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    assert_eq!(jwks.body["keys"][0]["kty"], "OKP");

    // int64 accepted as a number or a string.
    let admin = system.admin_token().await;
    let r = system
        .post(
            "/v1/products",
            Some(&admin),
            json!({"requestId": "r-num", "name": "Pan", "category": "kitchen",
            "price": {"amountMinor": 500, "currencyCode": "EUR"}, "active": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["product"]["price"]["amountMinor"], "500");

    // A caller-chosen request id is kept and returned.
    let kept = system
        .raw(
            Method::GET,
            "/v1/products",
            &[("x-request-id", "req-abc-123")],
            Bytes::new(),
        )
        .await;
    assert_eq!(kept.headers["x-request-id"], "req-abc-123");
    system.stop().await;
}

#[tokio::test]
async fn bad_input_is_a_400_with_the_reason_and_field_violations() {
    let system = start(|s| s.gateway.max_body_bytes = 2048).await;
    let ct = [("content-type", "application/json")];

    let malformed = system
        .raw(
            Method::POST,
            "/v1/auth/login",
            &ct,
            Bytes::from_static(b"{\"login\":"),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(status_name(&malformed), "INVALID_ARGUMENT");
    assert!(
        malformed.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );

    let unknown = system
        .post(
            "/v1/auth/login",
            None,
            json!({"login": "x", "password": "y", "color": "red"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("color"),
        "{:?}",
        unknown.body
    );

    let query = system.get("/v1/products?colour=red", None).await;
    assert_eq!(query.status, StatusCode::BAD_REQUEST);
    assert!(
        query.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour")
    );

    let wrong_type = system.get("/v1/products?page_size=many", None).await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);

    let invalid = system
        .post(
            "/v1/users",
            None,
            json!({"username": "x", "email": "not-an-email", "password": "short"}),
        )
        .await;
    assert_eq!(
        invalid.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        invalid.body
    );
    let details = invalid.body["error"]["details"].as_array().unwrap();
    let violations: Vec<&Value> = details
        .iter()
        .filter(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .flat_map(|d| d["fieldViolations"].as_array().unwrap())
        .collect();
    assert!(
        violations.iter().any(|v| v["field"] == "email"),
        "{details:?}"
    );

    let big = Bytes::from(format!("{{\"login\":\"{}\"}}", "x".repeat(4096)));
    let too_large = system.raw(Method::POST, "/v1/auth/login", &ct, big).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);

    let xml = system
        .raw(
            Method::POST,
            "/v1/auth/login",
            &[("content-type", "text/xml")],
            Bytes::from_static(b"<x/>"),
        )
        .await;
    assert_eq!(xml.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    system.stop().await;
}

#[tokio::test]
async fn stock_of_a_product_the_catalog_never_had_is_a_404_with_the_declared_reason() {
    let system = start(|_| {}).await;
    let admin = system.admin_token().await;
    let r = system
        .call(
            Method::PUT,
            "/v1/stock/0190f2d6-0000-7000-8000-000000000000",
            Some(&admin),
            Some(json!({"quantityOnHand": 5})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert_eq!(status_name(&r), "NOT_FOUND");
    let info = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        .cloned()
        .unwrap_or_else(|| panic!("no ErrorInfo in {:?}", r.body));
    assert_eq!(
        (info["reason"].as_str(), info["domain"].as_str()),
        (Some("PRODUCT_NOT_FOUND"), Some("polyshop.inventory"))
    );
    // The OpenAPI document declares it for clients.
    let doc = system.get("/openapi.json", None).await.body;
    let declared = &doc["components"]["schemas"]["polyshop.edge.ErrorInfo"]["x-polyshop-error-reasons"]
        ["polyshop.inventory"];
    assert!(declared["PRODUCT_NOT_FOUND"].is_string(), "{declared}");
    system.stop().await;
}

#[tokio::test]
async fn internal_methods_unknown_routes_and_wrong_methods() {
    let system = start(|_| {}).await;
    for path in [
        "/polyshop.inventory.v1.InventoryService/ReserveStock",
        "/v1/reservations",
        "/v1/stock:reserve",
    ] {
        let r = system.post(path, None, json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(status_name(&r), "NOT_FOUND");
    }
    let wrong = system
        .call(Method::PUT, "/v1/products/p1", None, Some(json!({})))
        .await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    let allow = wrong.headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("PATCH"), "{allow}");
    system.stop().await;
}

#[tokio::test]
async fn a_down_context_answers_503_and_the_edge_stays_ready_saying_which() {
    let system = start(|_| {}).await;
    let (_, token) = system.sign_up("carol").await;
    let orders = system.get("/v1/orders", Some(&token)).await;
    assert_eq!(
        orders.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        orders.body
    );
    assert_eq!(status_name(&orders), "UNAVAILABLE");
    let ready = system.get("/readyz", None).await;
    assert_eq!(
        ready.status,
        StatusCode::OK,
        "one context down keeps the edge in the load balancer: {:?}",
        ready.body
    );
    assert_eq!(ready.body["status"], "degraded");
    assert_eq!(ready.body["upstreams"]["user"], "serving");
    assert_eq!(ready.body["upstreams"]["order"], "unavailable");
    let products = system.get("/v1/products", Some(&token)).await;
    assert_eq!(products.status, StatusCode::OK, "browsing still answers");
    assert_eq!(system.get("/healthz", None).await.status, StatusCode::OK);
    assert_eq!(system.get("/livez", None).await.status, StatusCode::OK);
    // The full check (on the public port: no admin listener here) names each context: one
    // down leaves the edge ready, degraded.
    let full = system.get("/health", None).await;
    assert_eq!(full.status, StatusCode::OK, "{:?}", full.body);
    assert_eq!(full.body["status"], "degraded", "{:?}", full.body);
    let check = |name: &str| {
        full.body["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {:?}", full.body))
    };
    assert_eq!(check("upstream:order")["ok"], false);
    assert_eq!(check("upstream:user")["ok"], true);
    assert_eq!(check("upstream:user")["kind"], "upstream");
    assert_eq!(check("contexts")["critical"], true);
    assert_eq!(check("contexts")["ok"], true);
    assert!(check("memory")["rssBytes"].as_u64().is_some_and(|b| b > 0));
    system.stop().await;
}

#[tokio::test]
async fn a_context_that_keeps_failing_opens_its_circuit_and_fails_fast() {
    let system = start(|s| {
        s.gateway.breaker_failures = 3;
        s.gateway.breaker_cool_down_ms = 60_000;
    })
    .await;
    let (_, token) = system.sign_up("erin").await;
    // The order context is down: three refused calls open its circuit.
    for _ in 0..3 {
        let r = system.get("/v1/orders", Some(&token)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    }
    let r = system.get("/v1/orders", Some(&token)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("circuit open"), "{:?}", r.body);
    // Other contexts' circuits are their own.
    let products = system.get("/v1/products", Some(&token)).await;
    assert_eq!(products.status, StatusCode::OK);
    system.stop().await;
}

#[tokio::test]
async fn a_restarted_upstream_is_redialled_without_failing_a_call() {
    let mut system = start(|_| {}).await;
    let (_, token) = system.sign_up("dora").await;
    // Every connection the edge keeps to the catalog carries a call first.
    for _ in 0..4 {
        let listed = system.get("/v1/products", Some(&token)).await;
        assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    }
    system.restart_catalog().await;
    for _ in 0..4 {
        let listed = system.get("/v1/products", Some(&token)).await;
        assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    }
    system.stop().await;
}

#[tokio::test]
async fn browsers_get_cors_answers() {
    let system = start(|_| {}).await;
    let preflight = system
        .raw(
            Method::OPTIONS,
            "/v1/products",
            &[
                ("origin", "https://shop.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "authorization"),
            ],
            Bytes::new(),
        )
        .await;
    assert!(preflight.status.is_success(), "{:?}", preflight.status);
    assert_eq!(preflight.headers["access-control-allow-origin"], "*");
    let get = system
        .raw(
            Method::GET,
            "/v1/products",
            &[("origin", "https://shop.example")],
            Bytes::new(),
        )
        .await;
    assert_eq!(get.headers["access-control-allow-origin"], "*");
    assert!(
        get.headers["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("x-request-id")
    );
    system.stop().await;
}
