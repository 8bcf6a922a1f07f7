//! Native gRPC passthrough, grpc-web (binary and text) and reflection through the edge, under
//! the same access rules as JSON.
#![allow(clippy::unwrap_used)]

mod common;

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{PASSWORD, start};
use http::{Method, StatusCode};
use polyshop::{
    catalog::v1::{
        GetProductRequest, GetProductResponse, ListProductsRequest,
        catalog_service_client::CatalogServiceClient,
    },
    inventory::v1::{ReserveStockRequest, inventory_service_client::InventoryServiceClient},
    storefront::v1::{GetDashboardRequest, storefront_service_client::StorefrontServiceClient},
    user::v1::{GetUserRequest, LoginRequest, user_service_client::UserServiceClient},
};
use polyshop_platform::testing::{self, bearer};
use prost::Message;
use tonic::Code;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

#[tokio::test]
async fn generated_clients_call_services_through_the_edge() {
    let system = start(|_| {}).await;
    let admin = system.admin_token().await;
    let id = system.create_product(&admin, "Teapot", 2500).await;
    let (user_id, _) = system.sign_up("gina").await;
    let channel = testing::channel(system.gateway);

    let mut users = UserServiceClient::new(channel.clone());
    let login = users
        .login(LoginRequest {
            login: "gina".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    assert!(login.metadata().contains_key("x-request-id"));
    let token = login.into_inner().access_token;
    let me = users
        .get_user(bearer(
            GetUserRequest {
                user_id: user_id.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    assert_eq!(me.into_inner().user.unwrap().username, "gina");
    let anonymous = users
        .get_user(GetUserRequest { user_id })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    let mut catalog = CatalogServiceClient::new(channel.clone());
    let product = catalog
        .get_product(GetProductRequest {
            product_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(product.name, "Teapot");
    let listed = catalog
        .list_products(ListProductsRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.into_inner().products.len(), 1);

    // INTERNAL methods do not exist at the edge, whatever the token.
    let mut inventory = InventoryServiceClient::new(channel.clone());
    let internal = inventory
        .reserve_stock(bearer(ReserveStockRequest::default(), &admin))
        .await
        .unwrap_err();
    assert_eq!(internal.code(), Code::Unimplemented);

    // The storefront is served by the edge itself, over gRPC too.
    let mut storefront = StorefrontServiceClient::new(channel);
    let dash = storefront
        .get_dashboard(bearer(GetDashboardRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dash.profile.unwrap().username, "gina");
    assert!(dash.degraded.contains(&"orders".to_owned()));
    system.stop().await;
}

fn frame(message: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(0);
    b.put_u32(u32::try_from(message.len()).unwrap());
    b.put_slice(message);
    b.freeze()
}

/// Splits a grpc-web response body into its message and its trailer block.
fn unframe(mut body: Bytes) -> (Option<Bytes>, String) {
    let (mut message, mut trailers) = (None, String::new());
    while body.remaining() >= 5 {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        let chunk = body.split_to(len);
        if flag & 0x80 == 0 {
            message = Some(chunk);
        } else {
            trailers = String::from_utf8(chunk.to_vec()).unwrap();
        }
    }
    (message, trailers)
}

async fn grpc_web(
    system: &common::System,
    text: bool,
    path: &str,
    message: &[u8],
) -> (StatusCode, Option<Bytes>, String) {
    let framed = frame(message);
    let (ct, body) = if text {
        (
            "application/grpc-web-text",
            Bytes::from(STANDARD.encode(&framed)),
        )
    } else {
        ("application/grpc-web+proto", framed)
    };
    let response = system
        .raw_bytes(
            Method::POST,
            path,
            &[("content-type", ct), ("accept", ct), ("x-grpc-web", "1")],
            body,
        )
        .await;
    // grpc-web-text answers are concatenated base64 segments: decode quad by quad.
    let bytes = if text {
        let decoded: Vec<u8> = response
            .2
            .chunks(4)
            .flat_map(|q| STANDARD.decode(q).unwrap())
            .collect();
        Bytes::from(decoded)
    } else {
        response.2
    };
    let (message, mut trailers) = unframe(bytes);
    if let Some(code) = response.1.get("grpc-status") {
        // Trailers-only: the status came in the headers.
        trailers = format!("grpc-status:{}", code.to_str().unwrap());
    }
    (response.0, message, trailers)
}

#[tokio::test]
async fn grpc_web_binary_and_text_reach_the_same_upstreams() {
    let system = start(|_| {}).await;
    let admin = system.admin_token().await;
    let id = system.create_product(&admin, "Mug", 900).await;
    let request = GetProductRequest {
        product_id: id.clone(),
    }
    .encode_to_vec();
    for text in [false, true] {
        let (status, message, trailers) = grpc_web(
            &system,
            text,
            "/polyshop.catalog.v1.CatalogService/GetProduct",
            &request,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            trailers.replace(": ", ":").contains("grpc-status:0"),
            "{status} {message:?} {trailers}"
        );
        let reply = GetProductResponse::decode(message.unwrap()).unwrap();
        assert_eq!(reply.product.unwrap().product_id, id);
    }
    let (_, _, trailers) = grpc_web(
        &system,
        false,
        "/polyshop.user.v1.UserService/GetUser",
        &GetUserRequest {
            user_id: "x".into(),
        }
        .encode_to_vec(),
    )
    .await;
    assert!(
        trailers.contains("grpc-status:16"),
        "auth applies to grpc-web: {trailers}"
    );
    system.stop().await;
}

#[tokio::test]
async fn reflection_lists_exposed_services_only() {
    let system = start(|_| {}).await;
    let mut client = ServerReflectionClient::new(testing::channel(system.gateway));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "polyshop.user.v1.UserService",
        "polyshop.catalog.v1.CatalogService",
        "polyshop.order.v1.OrderService",
        "polyshop.storefront.v1.StorefrontService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.starts_with("polyshop.api")),
        "{names:?}"
    );

    // grpcurl, when the tools are installed (`just tools`).
    let grpcurl = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/grpcurl");
    if grpcurl.exists() {
        let addr = system.gateway.to_string();
        let out = tokio::process::Command::new(&grpcurl)
            .args(["-plaintext", &addr, "list"])
            .output()
            .await
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            listed.contains("polyshop.catalog.v1.CatalogService"),
            "{listed} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = tokio::process::Command::new(&grpcurl)
            .args([
                "-plaintext",
                "-d",
                "{\"page_size\": 1}",
                &addr,
                "polyshop.catalog.v1.CatalogService/ListProducts",
            ])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        testing::announce(
            "grpcurl not installed (`just tools`): grpcurl through the edge NOT covered",
        );
    }
    system.stop().await;
}
