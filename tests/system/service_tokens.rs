//! Service-token attacks at every service, not only the edge: each context verifies service
//! tokens against the published keys bound to their issuers, and calls only what the contract
//! lets the caller call.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use polyshop_platform::auth::{Claims, keys, service_keys};
use tonic::Code;

use crate::harness::{System, grpc_code as call, http_get_status, repo_root};

/// One method per context that needs a token: (context, gRPC path, its access).
const TARGETS: [(&str, &str, &str); 6] = [
    ("user", "/polyshop.user.v1.UserService/ListUsers", "admin"),
    (
        "catalog",
        "/polyshop.catalog.v1.CatalogService/CreateProduct",
        "admin",
    ),
    (
        "inventory",
        "/polyshop.inventory.v1.InventoryService/SetStock",
        "admin",
    ),
    (
        "order",
        "/polyshop.order.v1.OrderService/UpdateOrderStatus",
        "admin",
    ),
    (
        "payment",
        "/polyshop.payment.v1.PaymentService/Charge",
        "internal",
    ),
    (
        "notification",
        "/polyshop.notification.v1.NotificationService/ListNotifications",
        "authenticated",
    ),
];

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims(iss: &str, aud: &str) -> Claims {
    Claims {
        iss: iss.into(),
        sub: iss.into(),
        aud: aud.into(),
        exp: now() + 120,
        iat: now(),
        jti: polyshop_platform::new_id(),
        typ: "service".into(),
        roles: vec!["admin".into()],
    }
}

fn sign(key: &keys::KeyPair, claims: &Claims) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    let encoding = EncodingKey::from_ed_pem(key.pem.as_bytes()).expect("pem");
    jsonwebtoken::encode(&header, claims, &encoding).expect("sign")
}

fn key_of(system: &System, service: &str) -> keys::KeyPair {
    let path = system
        .data_dir
        .join("keys/services")
        .join(format!("polyshop-{service}.pem"));
    keys::load_or_generate(&path).expect("the service's key")
}

#[tokio::test]
async fn forged_misaddressed_and_unlisted_service_tokens_are_refused_everywhere() {
    let _ = repo_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let system = System::up(dir.path(), System::environment(dir.path())).await;
    let order = key_of(&system, "order");
    let catalog = key_of(&system, "catalog");

    for (context, path, access) in TARGETS {
        let url = system.url(&context.to_ascii_uppercase());
        let audience = format!("polyshop-{context}");
        // HS256 keyed with the public key bytes (the classic algorithm confusion).
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(order.kid.clone());
        let hs256 = jsonwebtoken::encode(
            &hs,
            &claims("polyshop-order", &audience),
            &EncodingKey::from_secret(order.public_x().as_bytes()),
        )
        .expect("hs256");
        let hs256_raw = jsonwebtoken::encode(
            &hs,
            &claims("polyshop-order", &audience),
            &EncodingKey::from_secret(
                &URL_SAFE_NO_PAD
                    .decode(order.public_x())
                    .expect("x is base64url"),
            ),
        )
        .expect("hs256");
        // A token order made for someone else, replayed here.
        let elsewhere = if context == "user" { "catalog" } else { "user" };
        let misaddressed = sign(
            &order,
            &claims("polyshop-order", &format!("polyshop-{elsewhere}")),
        );
        // Catalog's key claiming to be order.
        let spoofed = sign(&catalog, &claims("polyshop-order", &audience));
        let unknown_key = keys::load_or_generate(&dir.path().join("attacker.pem")).expect("key");
        let unknown = sign(&unknown_key, &claims("polyshop-order", &audience));
        for (case, token) in [
            ("HS256 keyed with the JWK x", &hs256),
            ("HS256 keyed with the raw public key", &hs256_raw),
            ("a token for another service", &misaddressed),
            ("iss spoofed", &spoofed),
            ("an unpublished key", &unknown),
        ] {
            assert_eq!(
                call(&url, path, token).await,
                Code::Unauthenticated,
                "{case} at {context}"
            );
        }
        // Genuine tokens of services the contract does not list for the method.
        let from_catalog = sign(&catalog, &claims("polyshop-catalog", &audience));
        let from_order = sign(&order, &claims("polyshop-order", &audience));
        let expected_for_order = match access {
            // A service is never an admin; order may call Charge, not the others.
            "admin" | "authenticated" => Code::PermissionDenied,
            _ => Code::InvalidArgument,
        };
        assert_eq!(
            call(&url, path, &from_order).await,
            expected_for_order,
            "order's genuine token on {path}"
        );
        if context != "catalog" {
            assert_eq!(
                call(&url, path, &from_catalog).await,
                Code::PermissionDenied,
                "catalog's genuine token on {path}"
            );
        }
    }

    // A service token is not a user token at the edge.
    let token = sign(&order, &claims("polyshop-order", "polyshop-user"));
    let client = http_get_status(&system.url("GATEWAY"), "/v1/users?page_size=1", &token).await;
    assert_eq!(client, 401, "a service token at the edge");

    // Rotation: the old key keeps verifying through the grace, then stops, no restart.
    let key_path = system.data_dir.join("keys/services/polyshop-order.pem");
    let trust = system.data_dir.join("keys/service-trust");
    let before_rotation = sign(&order, &claims("polyshop-order", "polyshop-payment"));
    let payment = system.url("PAYMENT");
    let charge = "/polyshop.payment.v1.PaymentService/Charge";
    service_keys::rotate(&key_path, &trust, "polyshop-order", Duration::from_secs(3))
        .expect("rotate");
    let fresh = sign(
        &key_of(&system, "order"),
        &claims("polyshop-order", "polyshop-payment"),
    );
    assert_eq!(
        call(&payment, charge, &before_rotation).await,
        Code::InvalidArgument
    );
    assert_eq!(call(&payment, charge, &fresh).await, Code::InvalidArgument);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        call(&payment, charge, &before_rotation).await,
        Code::Unauthenticated,
        "a rotated-out key stops verifying after the grace"
    );
    assert_eq!(call(&payment, charge, &fresh).await, Code::InvalidArgument);
    assert!(system.stop().await, "clean shutdown");
}
