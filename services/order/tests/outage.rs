//! NATS away while orders are placed: orders still succeed, and afterwards every committed
//! event is on its stream exactly once, applied once by each consumer, and the outboxes are
//! empty.

mod common;

use std::{collections::HashSet, time::Duration};

use common::System;
use polyshop::{
    notification::v1::{
        ListNotificationsRequest, NotificationKind,
        notification_service_client::NotificationServiceClient,
    },
    order::v1::OrderStatus,
};
use polyshop_platform::testing::poll_until;
use polyshop_platform::{db, events::outbox, testing::bearer};
use sea_orm::{ConnectionTrait, Statement};

async fn count(conn: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("row")
        .try_get_by_index::<i64>(0)
        .expect("count")
}

#[tokio::test]
async fn orders_succeed_while_nats_is_down_and_every_event_arrives_exactly_once() {
    let mut system = System::start().await;
    let admin = system.admin().await;
    let mug = system.product(&admin, "Mug", 700, 20).await;
    let (_, token) = system.customer("jane").await;
    // Let the user's registration reach the notification service first.
    tokio::time::sleep(Duration::from_millis(500)).await;

    system.nats.stop();
    let mut placed = Vec::new();
    for i in 0..3 {
        let order = system
            .place(&token, &format!("offline-{i}"), &[(&mug, 1)], "tok_visa")
            .await
            .expect("placed");
        assert_eq!(
            order.status,
            OrderStatus::Confirmed as i32,
            "the saga needs no broker"
        );
        placed.push(order.order_id);
    }
    let order_db = db::connect(
        &system.settings.data_dir,
        "order",
        &system.settings.order.service(),
    )
    .await
    .expect("db");
    assert!(
        outbox::pending(&order_db).await.expect("pending") >= 6,
        "events wait in the outbox"
    );

    system.nats.restart().await;
    let drained = poll_until(Duration::from_secs(30), async || {
        let mut total = 0;
        for name in ["order", "payment", "inventory", "user", "catalog"] {
            let conn = db::connect(&system.settings.data_dir, name, &Default::default())
                .await
                .ok()?;
            total += outbox::pending(&conn).await.ok()?;
        }
        (total == 0).then_some(())
    })
    .await;
    assert!(drained.is_some(), "every outbox drains once NATS is back");

    // Exactly once on the stream: as many messages as stored order events, all distinct ids.
    let stored = count(&order_db, "SELECT COUNT(*) FROM order_events").await;
    let js =
        async_nats::jetstream::new(async_nats::connect(system.nats.url()).await.expect("nats"));
    let mut stream = js.get_stream("POLYSHOP_ORDER").await.expect("stream");
    let info = stream.info().await.expect("info").state.clone();
    assert_eq!(
        i64::try_from(info.messages).expect("fits"),
        stored,
        "one message per committed event"
    );
    let mut ids = HashSet::new();
    for seq in info.first_sequence..=info.last_sequence {
        let m = stream.get_raw_message(seq).await.expect("message");
        ids.insert(
            m.headers
                .get("Polyshop-Event-Id")
                .expect("event id")
                .as_str()
                .to_owned(),
        );
    }
    assert_eq!(
        i64::try_from(ids.len()).expect("fits"),
        stored,
        "no event id twice"
    );

    // Applied once by each consumer.
    let applied = poll_until(Duration::from_secs(15), async || {
        let n = count(
            &order_db,
            "SELECT COUNT(*) FROM event_inbox WHERE consumer = 'order-projection'",
        )
        .await;
        (n == stored).then_some(n)
    })
    .await;
    assert_eq!(
        applied,
        Some(stored),
        "the projection applied each event once"
    );
    let mut notifications = NotificationServiceClient::new(system.channel("notification"));
    let confirmed = poll_until(Duration::from_secs(15), async || {
        let list = notifications
            .list_notifications(bearer(
                ListNotificationsRequest {
                    page_size: 100,
                    ..Default::default()
                },
                &token,
            ))
            .await
            .ok()?
            .into_inner();
        let n = list
            .notifications
            .iter()
            .filter(|n| n.kind == NotificationKind::OrderConfirmed as i32)
            .count();
        (n == placed.len()).then_some(n)
    })
    .await;
    assert_eq!(
        confirmed,
        Some(3),
        "one confirmation notification per order, no duplicates"
    );
    system.shutdown().await;
}
