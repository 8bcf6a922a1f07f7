//! The CreateOrder saga end to end: every participant real, in-process, with its own NATS.

mod common;

use std::time::Duration;

use common::System;
use polyshop::{
    notification::v1::{
        ListNotificationsRequest, NotificationKind,
        notification_service_client::NotificationServiceClient,
    },
    order::v1::{
        self as pb, CancelOrderRequest, GetOrderHistoryRequest, GetOrderRequest, ListOrdersRequest,
        OrderStatus, RejectionReason, UpdateOrderStatusRequest,
    },
    payment::v1::PaymentStatus,
};
use polyshop_platform::testing::bearer;
use polyshop_platform::testing::poll_until;
use prost::Message;
use tonic::Code;

#[tokio::test]
async fn a_good_order_is_confirmed_paid_sold_published_and_notified() {
    let system = System::start().await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 1250, 10).await;
    let (user_id, token) = system.customer("jane").await;

    let order = system
        .place(&token, "k1", &[(&mug, 3)], "tok_visa")
        .await
        .expect("placed");
    assert_eq!(order.status, OrderStatus::Confirmed as i32, "{order:?}");
    assert_eq!(
        order.total.as_ref().map(|m| m.amount_minor),
        Some(3750),
        "priced from the catalog"
    );
    assert_eq!(order.user_id, user_id);

    let stock = system.stock(&mug).await;
    assert_eq!(
        (stock.quantity_on_hand, stock.quantity_reserved),
        (7, 0),
        "stock sold"
    );
    let payments = system.payments(&admin, &order.order_id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].status, PaymentStatus::Captured as i32);
    assert_eq!(
        payments[0].amount.as_ref().map(|m| m.amount_minor),
        Some(3750)
    );

    let js =
        async_nats::jetstream::new(async_nats::connect(system.nats.url()).await.expect("nats"));
    let confirmed = poll_until(Duration::from_secs(5), async || {
        let stream = js.get_stream("POLYSHOP_ORDER").await.ok()?;
        stream
            .get_last_raw_message_by_subject("polyshop.order.confirmed")
            .await
            .ok()
    })
    .await
    .expect("order.confirmed on the stream");
    assert_eq!(
        pb::OrderConfirmed::decode(confirmed.payload)
            .expect("decodes")
            .order_id,
        order.order_id
    );

    let mut notifications = NotificationServiceClient::new(system.channel("notification"));
    let listed = poll_until(Duration::from_secs(2), async || {
        let list = notifications
            .list_notifications(bearer(
                ListNotificationsRequest {
                    page_size: 10,
                    ..Default::default()
                },
                &token,
            ))
            .await
            .ok()?
            .into_inner();
        list.notifications
            .iter()
            .any(|n| n.kind == NotificationKind::OrderConfirmed as i32)
            .then_some(())
    })
    .await;
    assert!(
        listed.is_some(),
        "the confirmation notification is listed within 2 s"
    );

    // GetOrder is the aggregate; history lists its events with versions.
    let history = system
        .orders()
        .get_order_history(bearer(
            GetOrderHistoryRequest {
                order_id: order.order_id.clone(),
            },
            &token,
        ))
        .await
        .expect("history")
        .into_inner()
        .entries;
    let versions: Vec<i64> = history.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2]);
    system.shutdown().await;
}

#[tokio::test]
async fn a_declined_card_rejects_the_order_and_puts_the_stock_back() {
    let system = System::start().await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 1000, 5).await;
    let (_, token) = system.customer("jane").await;
    let order = system
        .place(&token, "k1", &[(&mug, 2)], "tok_chargeDeclined")
        .await
        .expect("answered");
    assert_eq!(order.status, OrderStatus::Rejected as i32);
    assert_eq!(
        order.rejection_reason,
        RejectionReason::PaymentDeclined as i32
    );
    let stock = system.stock(&mug).await;
    assert_eq!(
        (stock.quantity_on_hand, stock.quantity_reserved),
        (5, 0),
        "stock back to its start"
    );
    let payments = system.payments(&admin, &order.order_id).await;
    assert!(
        payments
            .iter()
            .all(|p| p.status != PaymentStatus::Captured as i32),
        "nothing captured"
    );
    system.shutdown().await;
}

#[tokio::test]
async fn insufficient_stock_rejects_the_order_without_charging() {
    let system = System::start().await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 1000, 1).await;
    let (_, token) = system.customer("jane").await;
    let order = system
        .place(&token, "k1", &[(&mug, 2)], "tok_visa")
        .await
        .expect("answered");
    assert_eq!(
        order.rejection_reason,
        RejectionReason::InsufficientStock as i32
    );
    assert!(
        system.payments(&admin, &order.order_id).await.is_empty(),
        "nothing charged"
    );
    assert_eq!(system.stock(&mug).await.quantity_reserved, 0);

    let unknown = system
        .place(&token, "k2", &[("no-such-product", 1)], "tok_visa")
        .await
        .expect("answered");
    assert_eq!(
        unknown.rejection_reason,
        RejectionReason::ProductNotFound as i32
    );

    // Broken contract (the server's layer answers), then only the domain's rule (a product
    // listed twice).
    let err = system
        .place(&token, "", &[(&mug, 0)], "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = system
        .place(&token, "k3", &[(&mug, 1), (&mug, 1)], "tok_visa")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    system.shutdown().await;
}

#[tokio::test]
async fn the_same_key_sent_ten_times_at_once_places_one_order_and_charges_once() {
    let system = System::start().await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 500, 50).await;
    let (_, token) = system.customer("jane").await;
    let items = [(mug.as_str(), 1)];
    let attempts = (0..10).map(|_| system.place(&token, "same-key", &items, "tok_visa"));
    let results = futures::future::join_all(attempts).await;
    let ids: std::collections::HashSet<String> = results
        .into_iter()
        .map(|r| r.expect("each call answers").order_id)
        .collect();
    assert_eq!(ids.len(), 1, "one order");
    let order_id = ids.into_iter().next().expect("one");
    assert_eq!(
        system.payments(&admin, &order_id).await.len(),
        1,
        "one charge"
    );
    assert_eq!(system.stock(&mug).await.quantity_on_hand, 49);
    system.shutdown().await;
}

#[tokio::test]
async fn orders_move_forward_only_and_cancelling_refunds_and_restocks() {
    let system = System::start().await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 800, 10).await;
    let (_, token) = system.customer("jane").await;
    let (_, other) = system.customer("bob").await;
    let mut orders = system.orders();

    let first = system
        .place(&token, "a", &[(&mug, 2)], "tok_visa")
        .await
        .expect("placed");
    let err = orders
        .get_order(bearer(
            GetOrderRequest {
                order_id: first.order_id.clone(),
            },
            &other,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "someone else's order does not exist for you"
    );

    let cancelled = orders
        .cancel_order(bearer(
            CancelOrderRequest {
                order_id: first.order_id.clone(),
                reason: "changed my mind".into(),
            },
            &token,
        ))
        .await
        .expect("cancel")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(cancelled.status, OrderStatus::Cancelled as i32);
    assert_eq!(
        system.stock(&mug).await.quantity_on_hand,
        10,
        "stock returned"
    );
    let payments = system.payments(&admin, &first.order_id).await;
    assert_eq!(
        payments[0].status,
        PaymentStatus::Refunded as i32,
        "refunded"
    );

    let second = system
        .place(&token, "b", &[(&mug, 1)], "tok_visa")
        .await
        .expect("placed");
    let ship = |status: OrderStatus, tracking: &str| UpdateOrderStatusRequest {
        order_id: second.order_id.clone(),
        status: status as i32,
        tracking_number: tracking.into(),
    };
    let err = orders
        .update_order_status(bearer(ship(OrderStatus::Shipped, "T1"), &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "customers do not ship");
    let err = orders
        .update_order_status(bearer(ship(OrderStatus::Delivered, ""), &admin))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "deliver needs shipped"
    );
    orders
        .update_order_status(bearer(ship(OrderStatus::Shipped, "T1"), &admin))
        .await
        .expect("ship");
    let err = orders
        .cancel_order(bearer(
            CancelOrderRequest {
                order_id: second.order_id.clone(),
                reason: String::new(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "not once shipped");
    let delivered = orders
        .update_order_status(bearer(ship(OrderStatus::Delivered, ""), &admin))
        .await
        .expect("deliver")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(
        (delivered.status, delivered.version),
        (OrderStatus::Delivered as i32, 4)
    );
    system.shutdown().await;
}

async fn list_all(system: &System, token: &str) -> Vec<pb::Order> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = system
            .orders()
            .list_orders(bearer(
                ListOrdersRequest {
                    page_size: 2,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .expect("list")
            .into_inner();
        all.extend(page.orders);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn list_orders_comes_from_the_projection_and_a_rebuild_gives_the_same_results() {
    let system = System::start().await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 800, 10).await;
    let (_, token) = system.customer("jane").await;
    let mut placed = Vec::new();
    for (i, card) in ["tok_visa", "tok_chargeDeclined", "tok_visa"]
        .iter()
        .enumerate()
    {
        placed.push(
            system
                .place(&token, &format!("k{i}"), &[(&mug, 1)], card)
                .await
                .expect("placed")
                .order_id,
        );
    }
    system
        .orders()
        .cancel_order(bearer(
            CancelOrderRequest {
                order_id: placed[0].clone(),
                reason: "x".into(),
            },
            &token,
        ))
        .await
        .expect("cancel");
    let before = poll_until(Duration::from_secs(10), async || {
        let listed = list_all(&system, &token).await;
        let settled = listed.len() == 3
            && listed
                .iter()
                .all(|o| o.status != OrderStatus::Pending as i32)
            && listed
                .iter()
                .any(|o| o.status == OrderStatus::Cancelled as i32);
        settled.then_some(listed)
    })
    .await
    .expect("the projection catches up");
    let ids: Vec<&str> = before.iter().map(|o| o.order_id.as_str()).collect();
    let mut newest_first = placed.clone();
    newest_first.reverse();
    assert_eq!(ids, newest_first, "newest first");

    let rebuilt = polyshop_order::rebuild_projection(&system.settings)
        .await
        .expect("rebuild");
    assert_eq!(rebuilt, 3);
    assert_eq!(
        list_all(&system, &token).await,
        before,
        "identical after a rebuild"
    );
    system.shutdown().await;
}

#[tokio::test]
async fn a_suspended_users_token_stops_working_here_once_the_user_event_arrives() {
    use polyshop::user::v1::{
        ChangeUserStatusRequest, UserStatus, user_service_client::UserServiceClient,
    };
    let system = System::start().await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 500, 5).await;
    let (user_id, token) = system.customer("jane").await;
    UserServiceClient::new(system.channel("user"))
        .change_user_status(bearer(
            ChangeUserStatusRequest {
                user_id,
                status: UserStatus::Suspended as i32,
                reason: "fraud".into(),
            },
            &admin,
        ))
        .await
        .expect("suspend");
    let refused = poll_until(Duration::from_secs(10), async || {
        match system
            .place(
                &token,
                &polyshop_platform::new_id(),
                &[(&mug, 1)],
                "tok_visa",
            )
            .await
        {
            Err(s) if s.code() == Code::Unauthenticated => Some(()),
            _ => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                None
            }
        }
    })
    .await;
    assert!(
        refused.is_some(),
        "the replica's status change revokes the token in the order service"
    );
    system.shutdown().await;
}
