//! Service principals at a server's door: a service token works only where the contract
//! lists its issuer among the method's callers, never on an ADMIN method, and only at the
//! service it was addressed to.

use http::HeaderMap;
use polyshop_platform::{
    auth::Principal,
    testing::{self, TestTokens},
};
use tonic::Code;

const RESERVE: &str = "/polyshop.inventory.v1.InventoryService/ReserveStock";
const SET_STOCK: &str = "/polyshop.inventory.v1.InventoryService/SetStock";
const GET_STOCK: &str = "/polyshop.inventory.v1.InventoryService/GetStock";

fn with(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    headers
}

#[tokio::test]
async fn only_listed_callers_pass_and_services_are_never_admins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = testing::settings(dir.path());
    let tokens = TestTokens::new(&settings);
    let inventory = tokens.authenticator("polyshop-inventory");

    let order = tokens.service("polyshop-order", "polyshop-inventory");
    let principal = inventory
        .authorize(RESERVE, &with(&order))
        .await
        .expect("order is listed for ReserveStock");
    assert_eq!(
        principal,
        Some(Principal::Service {
            name: "polyshop-order".into()
        })
    );

    let catalog = tokens.service("polyshop-catalog", "polyshop-inventory");
    let denied = inventory.authorize(RESERVE, &with(&catalog)).await;
    assert_eq!(
        denied.expect_err("catalog is not listed").code(),
        Code::PermissionDenied
    );

    let admin_call = inventory.authorize(SET_STOCK, &with(&order)).await;
    assert_eq!(
        admin_call.expect_err("a service is no admin").code(),
        Code::PermissionDenied
    );
    assert!(
        inventory
            .authorize(GET_STOCK, &with(&catalog))
            .await
            .is_ok(),
        "public methods stay open"
    );

    // Addressed to payment, presented at inventory.
    let for_payment = tokens.service("polyshop-order", "polyshop-payment");
    let wrong_audience = inventory.authorize(RESERVE, &with(&for_payment)).await;
    assert_eq!(
        wrong_audience.expect_err("wrong audience").code(),
        Code::Unauthenticated
    );

    let customer = tokens.customer("u1");
    let user_call = inventory.authorize(RESERVE, &with(&customer)).await;
    assert_eq!(
        user_call.expect_err("users never call INTERNAL").code(),
        Code::PermissionDenied
    );
    let admin_user = tokens.admin("u1");
    assert!(
        inventory
            .authorize(SET_STOCK, &with(&admin_user))
            .await
            .is_ok()
    );
}
