//! Crash recovery: the order process is killed at each saga step (a failpoint makes it exit
//! the first time it gets there), `polyshop up` restarts it, and the resumed saga ends the
//! order CONFIRMED or REJECTED with no leaked reservation, no double charge and stock conserved.

use std::time::Duration;

use polyshop::{
    inventory::v1::{GetStockRequest, inventory_service_client::InventoryServiceClient},
    order::v1::{Order, OrderStatus, order_service_client::OrderServiceClient},
    payment::v1::{
        ListPaymentsRequest, PaymentStatus, payment_service_client::PaymentServiceClient,
    },
};
use polyshop_platform::testing::{bearer, eventually_some};

use crate::harness::{System, order_request};

async fn stock(system: &System, product_id: &str) -> (i32, i32) {
    let s = InventoryServiceClient::connect(system.url("INVENTORY"))
        .await
        .expect("connect")
        .get_stock(GetStockRequest {
            product_id: product_id.into(),
        })
        .await
        .expect("stock")
        .into_inner()
        .stock
        .expect("level");
    (s.quantity_on_hand, s.quantity_reserved)
}

pub(crate) async fn place(
    system: &System,
    token: &str,
    product_id: &str,
) -> Result<Order, tonic::Status> {
    place_with_key(system, token, product_id, "crash-test", 2).await
}

/// CreateOrder of `quantity` × `product_id` under idempotency `key`.
pub(crate) async fn place_with_key(
    system: &System,
    token: &str,
    product_id: &str,
    key: &str,
    quantity: i32,
) -> Result<Order, tonic::Status> {
    let mut orders = OrderServiceClient::connect(system.url("ORDER"))
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let request = order_request(key, product_id, quantity);
    orders
        .create_order(bearer(request, token))
        .await
        .map(|r| r.into_inner().order.expect("order"))
}

async fn crash_at(failpoint: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = System::environment(dir.path());
    env.insert("POLYSHOP_FAILPOINT".into(), format!("{failpoint}=exit"));
    let system = System::up(dir.path(), env).await;

    let token = system.signup("jane").await;
    let admin = system.login("admin", &system.admin_password()).await;
    let product = system.first_product().await;
    let before = stock(&system, &product.product_id).await;

    // The first call dies with the process at the failpoint (or answers, for the last step).
    let _ = place(&system, &token, &product.product_id).await;
    // The client retries with the same key until the restarted service answers.
    let order = eventually_some(
        &format!("{failpoint}: the order to settle"),
        Duration::from_secs(30),
        async || {
            place(&system, &token, &product.product_id)
                .await
                .ok()
                .filter(|o| o.status != OrderStatus::Pending as i32)
        },
    )
    .await;
    assert!(
        [OrderStatus::Confirmed as i32, OrderStatus::Rejected as i32].contains(&order.status),
        "{failpoint}: ended {order:?}"
    );
    assert!(
        dir.path().join("failpoints").join(failpoint).exists(),
        "{failpoint} really fired"
    );

    let after = stock(&system, &product.product_id).await;
    let sold = if order.status == OrderStatus::Confirmed as i32 {
        2
    } else {
        0
    };
    assert_eq!(
        after,
        (before.0 - sold, 0),
        "{failpoint}: stock conserved, no reservation leaked"
    );
    let payments = PaymentServiceClient::connect(system.url("PAYMENT"))
        .await
        .expect("connect")
        .list_payments(bearer(
            ListPaymentsRequest {
                page_size: 100,
                page_token: String::new(),
                order_id: order.order_id.clone(),
            },
            &admin,
        ))
        .await
        .expect("payments")
        .into_inner()
        .payments;
    let captured = payments
        .iter()
        .filter(|p| p.status == PaymentStatus::Captured as i32)
        .count();
    let expected = usize::from(order.status == OrderStatus::Confirmed as i32);
    assert_eq!(
        captured, expected,
        "{failpoint}: exactly one charge for a confirmed order, none kept otherwise"
    );
    assert!(payments.len() <= 1, "{failpoint}: never charged twice");
    assert!(system.stop().await);
}

#[tokio::test]
async fn a_crash_after_creating_the_order_is_recovered() {
    crash_at("order.after_create").await;
}

#[tokio::test]
async fn a_crash_after_reserving_stock_is_recovered() {
    crash_at("order.after_reserve").await;
}

#[tokio::test]
async fn a_crash_after_charging_is_recovered() {
    crash_at("order.after_charge").await;
}

#[tokio::test]
async fn a_crash_after_confirming_is_recovered() {
    crash_at("order.after_confirm").await;
}
