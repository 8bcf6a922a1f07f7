//! Failure semantics end to end (every participant real, in-process): an outage delays orders
//! and never loses one, a cancellation racing a ship never ships a refunded order, and a
//! refund refused during compensation is flagged instead of dropped.

mod common;

use std::time::Duration;

use common::System;
use polyshop::{
    order::v1::{
        CancelOrderRequest, GetOrderRequest, Order, OrderStatus, UpdateOrderStatusRequest,
    },
    payment::v1::PaymentStatus,
};
use polyshop_platform::testing::bearer;
use polyshop_platform::testing::poll_until;
use tonic::Code;

async fn get(system: &System, token: &str, order_id: &str) -> Order {
    system
        .orders()
        .get_order(bearer(
            GetOrderRequest {
                order_id: order_id.into(),
            },
            token,
        ))
        .await
        .expect("get")
        .into_inner()
        .order
        .expect("order")
}

#[tokio::test]
async fn payment_down_for_seconds_delays_orders_and_every_one_is_confirmed_once_it_is_back() {
    let mut system = System::start_with(|s| {
        s.order.breaker_failures = 2;
        s.order.call_attempts = 1;
        s.order.call_timeout_ms = 500;
        s.order.saga_retry_base_ms = 100;
        s.order.saga_retry_max_ms = 500;
        s.order.settle_wait_ms = 1000;
    })
    .await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 800, 20).await;
    let (_, token) = system.customer("jane").await;
    system.stop("payment").await;

    let mut placed = Vec::new();
    for i in 0..8 {
        let key = format!("outage-{i}");
        let order = system
            .place(&token, &key, &[(&mug, 1)], "tok_visa")
            .await
            .unwrap_or_else(|e| panic!("order {i} is stored, never refused: {e:?}"));
        assert_eq!(order.status, OrderStatus::Pending as i32, "order {i}");
        placed.push((key, order.order_id));
    }
    // Replaying a key while payment is still down answers with the same stored order.
    for (key, id) in &placed {
        let again = system.place(&token, key, &[(&mug, 1)], "tok_visa").await;
        match again {
            Ok(order) => assert_eq!(&order.order_id, id, "{key}"),
            Err(e) => panic!("{key}: a replay of a stored order got {e:?}"),
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    system.restart("payment").await;

    let all_confirmed = poll_until(Duration::from_secs(20), async || {
        for (_, id) in &placed {
            if get(&system, &token, id).await.status != OrderStatus::Confirmed as i32 {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(all_confirmed.is_some(), "every delayed order is confirmed");
    for (key, id) in &placed {
        let again = system
            .place(&token, key, &[(&mug, 1)], "tok_visa")
            .await
            .unwrap_or_else(|e| {
                assert!(
                    !polyshop_platform::testing::is_server_error(e.code()),
                    "{key}: {e:?}"
                );
                panic!("{key}: {e:?}")
            });
        assert_eq!(
            (&again.order_id, again.status),
            (id, OrderStatus::Confirmed as i32),
            "{key}: the key converges"
        );
        let payments = system.payments(&admin, id).await;
        assert_eq!(payments.len(), 1, "{key}: charged once");
        assert_eq!(payments[0].status, PaymentStatus::Captured as i32);
    }
    let stock = system.stock(&mug).await;
    assert_eq!((stock.quantity_on_hand, stock.quantity_reserved), (12, 0));
    system.shutdown().await;
}

#[tokio::test]
async fn a_cancellation_racing_a_ship_never_leaves_a_shipped_order_refunded() {
    let system = System::start_with(|s| {
        s.order.failpoints = vec!["order.cancel.after_refund=sleep(1500)".into()];
        s.order.settle_wait_ms = 5000;
    })
    .await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 800, 10).await;
    let (_, token) = system.customer("jane").await;
    let order = system
        .place(&token, "race", &[(&mug, 2)], "tok_visa")
        .await
        .expect("placed");
    assert_eq!(order.status, OrderStatus::Confirmed as i32);

    let mut orders = system.orders();
    let cancel = {
        let (id, token) = (order.order_id.clone(), token.clone());
        tokio::spawn(async move {
            orders
                .cancel_order(bearer(
                    CancelOrderRequest {
                        order_id: id,
                        reason: "changed my mind".into(),
                    },
                    &token,
                ))
                .await
        })
    };
    // Ship while the cancellation sits between its refund and its last append.
    let refunded = poll_until(Duration::from_secs(5), async || {
        let p = system.payments(&admin, &order.order_id).await;
        p.first()
            .is_some_and(|p| p.status == PaymentStatus::Refunded as i32)
            .then_some(())
    })
    .await;
    assert!(refunded.is_some(), "the refund went through first");
    let ship = system
        .orders()
        .update_order_status(bearer(
            UpdateOrderStatusRequest {
                order_id: order.order_id.clone(),
                status: OrderStatus::Shipped as i32,
                tracking_number: "T-1".into(),
            },
            &admin,
        ))
        .await;
    let err = ship.expect_err("an order being cancelled is not shipped");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    let cancelled = cancel
        .await
        .expect("task")
        .expect("cancel")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(cancelled.status, OrderStatus::Cancelled as i32);
    let now = get(&system, &token, &order.order_id).await;
    assert_eq!(
        now.status,
        OrderStatus::Cancelled as i32,
        "never SHIPPED with the money back"
    );
    assert_eq!(system.stock(&mug).await.quantity_on_hand, 10, "stock back");
    system.shutdown().await;
}

#[tokio::test]
async fn a_refund_refused_during_compensation_is_listed_as_stuck_and_the_money_is_not_dropped() {
    let system = System::start_with(|s| {
        // The hold "lapses" after the charge, and the payment service refuses refunds.
        s.order.failpoints = vec!["confirm_reservation=refuse".into(), "refund=refuse".into()];
        s.order.saga_horizon_secs = 1;
        s.order.saga_retry_base_ms = 100;
        s.order.saga_retry_max_ms = 200;
        s.order.settle_wait_ms = 500;
    })
    .await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 800, 10).await;
    let (_, token) = system.customer("jane").await;
    let order = system
        .place(&token, "stuck", &[(&mug, 1)], "tok_visa")
        .await
        .expect("stored");

    let stuck = poll_until(Duration::from_secs(10), async || {
        let stuck = polyshop_order::stuck_orders(&system.settings)
            .await
            .expect("list");
        stuck.into_iter().find(|s| s.order_id == order.order_id)
    })
    .await
    .expect("listed as stuck");
    assert_eq!(stuck.step, "compensate");
    assert!(
        stuck.why.contains("refund refused"),
        "says why: {}",
        stuck.why
    );

    let now = get(&system, &token, &order.order_id).await;
    assert_eq!(
        now.status,
        OrderStatus::Pending as i32,
        "not REJECTED while its money is still captured"
    );
    let payments = system.payments(&admin, &order.order_id).await;
    assert_eq!(payments[0].status, PaymentStatus::Captured as i32);
    system.shutdown().await;
}
