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
    // The health model (docs/operating.md, "Health"): without NATS only notification, whose
    // answers come from events, leaves rotation; every process stays live.
    let unready = poll_until(Duration::from_secs(15), async || {
        (system.health("notification", "readiness").await == 2).then_some(())
    })
    .await;
    assert!(unready.is_some(), "notification is unready without NATS");
    let (code, body) = system.http_get("notification", "/readyz").await;
    assert_eq!(
        (code, &body["failing"][0]["name"]),
        (503, &"nats".into()),
        "{body}"
    );
    for name in ["order", "payment", "inventory", "user", "catalog"] {
        assert_eq!(
            system.health(name, "readiness").await,
            1,
            "{name} stays ready"
        );
        assert_eq!(system.health(name, "").await, 1, "{name} stays ready");
    }
    for name in ["order", "notification"] {
        assert_eq!(
            system.health(name, "liveness").await,
            1,
            "{name} stays live"
        );
        assert_eq!(
            system.http_get(name, "/livez").await.0,
            200,
            "{name} stays live"
        );
    }
    // Order's full check: degraded, NATS down, its participants up.
    let (code, full) = system.http_get("order", "/health").await;
    assert_eq!((code, &full["status"]), (200, &"degraded".into()), "{full}");
    let check = |name: &str| {
        full["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {full}"))
    };
    assert_eq!(check("nats")["ok"], false, "{full}");
    for participant in ["user", "catalog", "inventory", "payment"] {
        let upstream = check(&format!("upstream:{participant}"));
        assert_eq!(upstream["ok"], true, "{upstream}");
        assert!(upstream["latencyMs"].is_number(), "{upstream}");
    }
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
    let ready = poll_until(Duration::from_secs(20), async || {
        (system.health("notification", "readiness").await == 1).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "notification is ready again with NATS back"
    );
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
