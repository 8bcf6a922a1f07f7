//! A suspended account, end to end: once an admin suspends a customer, the customer's still
//! unexpired access token is refused by the edge and, called directly, by catalog, payment and
//! notification within 5 s (each follows the user events; the user service checks its own
//! database).

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use polyshop::user::v1::{
    ChangeUserStatusRequest, UserStatus, user_service_client::UserServiceClient,
};
use polyshop_platform::testing::poll_until;
use tonic::Code;

use crate::harness::{System, grpc_code, http_get_status};

const CREATE_PRODUCT: &str = "/polyshop.catalog.v1.CatalogService/CreateProduct";
const LIST_PAYMENTS: &str = "/polyshop.payment.v1.PaymentService/ListPayments";
const LIST_NOTIFICATIONS: &str = "/polyshop.notification.v1.NotificationService/ListNotifications";

/// The `sub` of a JWT.
fn subject(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json");
    claims["sub"].as_str().expect("sub").to_owned()
}

/// What each place answers `token` with: edge HTTP status, then catalog, payment and
/// notification gRPC codes.
async fn answers(system: &System, token: &str) -> (u16, Code, Code, Code) {
    (
        http_get_status(&system.url("GATEWAY"), "/v1/notifications", token).await,
        grpc_code(&system.url("CATALOG"), CREATE_PRODUCT, token).await,
        grpc_code(&system.url("PAYMENT"), LIST_PAYMENTS, token).await,
        grpc_code(&system.url("NOTIFICATION"), LIST_NOTIFICATIONS, token).await,
    )
}

#[tokio::test]
async fn a_suspended_customer_is_refused_everywhere_within_five_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let system = System::up(dir.path(), System::environment(dir.path())).await;
    let customer = system.signup("mallory").await;
    let admin = system.login("admin", &system.admin_password()).await;

    // Signed in: the edge and the services serve them (catalog's CreateProduct wants an
    // admin, so a valid customer gets PERMISSION_DENIED, not UNAUTHENTICATED).
    assert_eq!(
        answers(&system, &customer).await,
        (200, Code::PermissionDenied, Code::Ok, Code::Ok)
    );

    let mut users = UserServiceClient::connect(system.url("USER"))
        .await
        .expect("connect");
    let mut request = tonic::Request::new(ChangeUserStatusRequest {
        user_id: subject(&customer),
        status: UserStatus::Suspended as i32,
        reason: "system test".into(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {admin}").parse().expect("header"),
    );
    users.change_user_status(request).await.expect("suspend");

    let refused = (
        401,
        Code::Unauthenticated,
        Code::Unauthenticated,
        Code::Unauthenticated,
    );
    let mut last = None;
    let settled = poll_until(Duration::from_secs(5), async || {
        let now = answers(&system, &customer).await;
        last = Some(now);
        (now == refused).then_some(now)
    })
    .await;
    assert_eq!(
        settled,
        Some(refused),
        "within 5 s every place refuses the suspended customer; last seen {last:?}"
    );
    assert!(system.stop().await, "clean shutdown");
}
