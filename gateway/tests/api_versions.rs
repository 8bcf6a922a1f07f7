//! Two versions of the catalog side by side through the edge: `/v1/products…` and
//! `polyshop.catalog.v1` (deprecated) answer with Deprecation, Sunset and Link headers over
//! JSON, gRPC and grpc-web; `/v2/products…` and `polyshop.catalog.v2` answer from the same
//! products without them; errors of v1 carry the headers too; OpenAPI marks v1 deprecated
//! and lists v2.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::start;
use http::{HeaderMap, Method, StatusCode};
use polyshop::catalog::{
    v1::{self as v1pb, catalog_service_client::CatalogServiceClient as V1Client},
    v2::{self as v2pb, catalog_service_client::CatalogServiceClient as V2Client},
};
use polyshop_platform::testing;
use prost::Message;
use serde_json::json;

const DEPRECATION: &str = "@1796083200";
const SUNSET: &str = "Wed, 30 Jun 2027 00:00:00 GMT";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

fn assert_deprecated(headers: &HeaderMap, successor: &str, what: &str) {
    assert_eq!(header(headers, "deprecation"), Some(DEPRECATION), "{what}");
    assert_eq!(header(headers, "sunset"), Some(SUNSET), "{what}");
    assert_eq!(
        header(headers, "link"),
        Some(format!("<{successor}>; rel=\"successor-version\"").as_str()),
        "{what}"
    );
}

fn assert_current(headers: &HeaderMap, what: &str) {
    for name in ["deprecation", "sunset", "link"] {
        assert_eq!(header(headers, name), None, "{what}: {name}");
    }
}

#[tokio::test]
async fn json_routes_of_both_versions_answer_and_only_v1_is_marked_deprecated() {
    let system = start(|_| {}).await;
    let admin = system.admin_token().await;
    let created = system
        .post(
            "/v2/products",
            Some(&admin),
            json!({
                "name": "Kettle",
                "category": "kitchen",
                "prices": [
                    {"amountMinor": "4999", "currencyCode": "EUR"},
                    {"amountMinor": "5499", "currencyCode": "USD"},
                ],
                "active": true,
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    assert_current(&created.headers, "POST /v2/products");
    let id = created.body["product"]["productId"]
        .as_str()
        .unwrap()
        .to_owned();

    let v2 = system.get(&format!("/v2/products/{id}"), None).await;
    assert_eq!(v2.status, StatusCode::OK, "{:?}", v2.body);
    assert_eq!(v2.body["product"]["prices"].as_array().unwrap().len(), 2);
    assert_current(&v2.headers, "GET /v2/products/{id}");

    let v1 = system.get(&format!("/v1/products/{id}"), None).await;
    assert_eq!(v1.status, StatusCode::OK, "{:?}", v1.body);
    assert_eq!(v1.body["product"]["price"]["currencyCode"], "EUR");
    assert_deprecated(
        &v1.headers,
        &format!("/v2/products/{id}"),
        "GET /v1/products/{id}",
    );
    let list = system.get("/v1/products?category=kitchen", None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_deprecated(&list.headers, "/v2/products", "GET /v1/products");
    system.stop().await;
}

#[tokio::test]
async fn errors_of_v1_carry_the_headers_too_whether_the_edge_or_the_catalog_answers() {
    let system = start(|_| {}).await;
    let missing = system.get("/v1/products/no-such-product", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{:?}", missing.body);
    assert_deprecated(
        &missing.headers,
        "/v2/products/no-such-product",
        "GET /v1/products/{id} of a missing product (the catalog's answer)",
    );
    let anonymous = system
        .post("/v1/products", None, json!({"name": "Kettle"}))
        .await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        anonymous.body
    );
    assert_deprecated(
        &anonymous.headers,
        "/v2/products",
        "POST /v1/products without a token (the edge's answer)",
    );
    let v2 = system
        .post("/v2/products", None, json!({"name": "Kettle"}))
        .await;
    assert_eq!(v2.status, StatusCode::UNAUTHORIZED, "{:?}", v2.body);
    assert_current(&v2.headers, "POST /v2/products without a token");

    let refused = V1Client::new(testing::channel(system.gateway))
        .create_product(v1pb::CreateProductRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert_deprecated(
        &refused.metadata().clone().into_headers(),
        "/polyshop.catalog.v2.CatalogService/CreateProduct",
        "gRPC v1 CreateProduct without a token (the edge's answer)",
    );
    system.stop().await;
}

fn frame(message: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(0);
    b.put_u32(u32::try_from(message.len()).unwrap());
    b.put_slice(message);
    b.freeze()
}

#[tokio::test]
async fn grpc_and_grpc_web_calls_of_v1_carry_the_headers_and_v2_calls_do_not() {
    let system = start(|_| {}).await;
    let admin = system.admin_token().await;
    let id = system.create_product(&admin, "Teapot", 2500).await;
    let channel = testing::channel(system.gateway);

    let old = V1Client::new(channel.clone())
        .get_product(v1pb::GetProductRequest {
            product_id: id.clone(),
        })
        .await
        .unwrap();
    assert_deprecated(
        &old.metadata().clone().into_headers(),
        "/polyshop.catalog.v2.CatalogService/GetProduct",
        "gRPC v1 GetProduct",
    );
    let new = V2Client::new(channel)
        .get_product(v2pb::GetProductRequest {
            product_id: id.clone(),
        })
        .await
        .unwrap();
    assert_current(&new.metadata().clone().into_headers(), "gRPC v2 GetProduct");
    let product = new.into_inner().product.unwrap();
    assert_eq!(product.prices.len(), 1, "a v1 product has its one price");
    assert_eq!(product.prices[0].amount_minor, 2500);

    let ct = "application/grpc-web+proto";
    let request = frame(
        &v1pb::GetProductRequest {
            product_id: id.clone(),
        }
        .encode_to_vec(),
    );
    let (status, headers, _) = system
        .raw_bytes(
            Method::POST,
            "/polyshop.catalog.v1.CatalogService/GetProduct",
            &[("content-type", ct), ("accept", ct), ("x-grpc-web", "1")],
            request,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_deprecated(
        &headers,
        "/polyshop.catalog.v2.CatalogService/GetProduct",
        "grpc-web v1 GetProduct",
    );
    let request = frame(&v2pb::GetProductRequest { product_id: id }.encode_to_vec());
    let (status, headers, _) = system
        .raw_bytes(
            Method::POST,
            "/polyshop.catalog.v2.CatalogService/GetProduct",
            &[("content-type", ct), ("accept", ct), ("x-grpc-web", "1")],
            request,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_current(&headers, "grpc-web v2 GetProduct");
    system.stop().await;
}

#[tokio::test]
async fn openapi_marks_v1_deprecated_and_lists_v2() {
    let system = start(|_| {}).await;
    let doc = system.get("/openapi.json", None).await.body;
    let old = &doc["paths"]["/v1/products/{product_id}"]["get"];
    assert_eq!(old["deprecated"], true);
    assert_eq!(old["operationId"], "CatalogService_GetProduct");
    assert_eq!(old["x-sunset"], SUNSET);
    assert_eq!(old["x-successor"]["route"], "/v2/products/{product_id}");
    for status in ["200", "404", "429"] {
        let headers = &old["responses"][status]["headers"];
        for name in ["Deprecation", "Sunset", "Link"] {
            assert!(
                headers[name].is_object(),
                "{name} is documented for {status}"
            );
        }
    }
    assert!(old["responses"]["429"]["headers"]["Retry-After"].is_object());
    let new = &doc["paths"]["/v2/products/{product_id}"]["get"];
    assert!(new["responses"]["404"].get("headers").is_none());
    assert_eq!(new["operationId"], "CatalogServiceV2_GetProduct");
    assert_eq!(new["tags"], json!(["CatalogServiceV2"]));
    assert!(new.get("deprecated").is_none());
    assert!(new["responses"]["200"]["headers"].get("Sunset").is_none());
    for path in ["/v2/products", "/v2/products:batchGet"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path}");
    }
    system.stop().await;
}
