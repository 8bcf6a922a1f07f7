//! Black-box tests of the notification service: real protobuf events published to a real
//! JetStream, the real server on 127.0.0.1:0 over a fresh SQLite file, called through the
//! generated client with tokens from a test issuer. Mail is sent after the consumer's commit,
//! so mail is awaited as a condition (`wait_for_mail`, `eventually_some`).

mod common;

use polyshop_platform::testing::{EVENTUALLY, eventually_some};
use std::time::Duration;

use polyshop::{
    api::v1::Money,
    notification::v1::{self as pb, NotificationKind, NotificationSent},
    order::v1::{self as order, RejectionReason},
    payment::v1 as payment,
};
use polyshop_platform::{events::dlq, testing::bearer};
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

use common::{fake_smtp, message_ids, start, start_with};

fn shipped(user_id: &str, order_id: &str) -> order::OrderShipped {
    order::OrderShipped {
        order_id: order_id.into(),
        user_id: user_id.into(),
        tracking_number: format!("TRACK-{order_id}"),
        occur_time: None,
    }
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_registered_user_gets_a_welcome_notification_a_mailbox_line_and_an_event() {
    let app = start().await;
    let event_id = app.register("u-ada", "ada@example.com", "Ada").await;

    let found = app.wait_for("u-ada", 1).await;
    assert_eq!(found.len(), 1);
    let n = &found[0];
    assert_eq!(n.kind(), NotificationKind::Welcome);
    assert_eq!(n.title, "Welcome to Polyshop");
    assert!(n.body.starts_with("Hello Ada, "), "{}", n.body);
    assert_eq!(n.source_event_id, event_id);
    assert_eq!(n.user_id, "u-ada");
    assert!(!n.read && n.read_time.is_none() && n.create_time.is_some());
    let page = app.list("u-ada", Default::default()).await.expect("list");
    assert_eq!(page.unread_count, 1);

    let lines = app.wait_for_mail("u-ada", 1).await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["notification_id"], n.notification_id.as_str());
    assert_eq!(lines[0]["to"], "\"Ada\" <ada@example.com>");
    assert_eq!(lines[0]["subject"], "Welcome to Polyshop");

    // NotificationSent went out through the outbox once the mail was handed over.
    let sent = eventually_some("NotificationSent", EVENTUALLY, async || {
        let stream = app
            .js
            .get_stream("POLYSHOP_NOTIFICATION")
            .await
            .expect("stream");
        let raw = stream
            .get_last_raw_message_by_subject("polyshop.notification.sent")
            .await
            .ok()?;
        Some(NotificationSent::decode(raw.payload).expect("NotificationSent"))
    })
    .await;
    assert_eq!(sent.channel, "mailbox");
    assert_eq!(
        sent.notification.expect("notification").notification_id,
        n.notification_id
    );
    app.stop().await;
}

#[tokio::test]
async fn order_and_payment_events_each_notify_the_right_user() {
    let app = start().await;
    app.register("u1", "one@example.com", "One").await;
    // Streams are consumed independently: as in real life, the registration is known before
    // the orders (an order event handled earlier would be kept in-app, without mail).
    app.wait_for("u1", 1).await;
    app.publish(&order::OrderConfirmed {
        order_id: "o-confirmed".into(),
        user_id: "u1".into(),
        payment_id: "p1".into(),
        occur_time: None,
    })
    .await;
    app.publish(&order::OrderRejected {
        order_id: "o-rejected".into(),
        user_id: "u1".into(),
        reason: RejectionReason::InsufficientStock as i32,
        detail: "only 2 left".into(),
        occur_time: None,
    })
    .await;
    app.publish(&shipped("u1", "o-shipped")).await;
    app.publish(&order::OrderCancelled {
        order_id: "o-cancelled".into(),
        user_id: "u1".into(),
        reason: "changed my mind".into(),
        occur_time: None,
    })
    .await;
    // u2 never registered here: the refund is kept in-app, without mail.
    app.publish(&payment::PaymentRefunded {
        payment: Some(payment::Payment {
            payment_id: "p2".into(),
            order_id: "o-refunded".into(),
            user_id: "u2".into(),
            amount: Some(Money {
                amount_minor: 4250,
                currency_code: "EUR".into(),
            }),
            refunded_amount: Some(Money {
                amount_minor: 4250,
                currency_code: "EUR".into(),
            }),
            ..Default::default()
        }),
        reason: "order cancelled".into(),
        occur_time: None,
    })
    .await;

    let one = app.wait_for("u1", 5).await;
    assert_eq!(one.len(), 5, "{one:#?}");
    let by_kind = |kind: NotificationKind| {
        one.iter()
            .find(|n| n.kind() == kind)
            .unwrap_or_else(|| panic!("{kind:?} in {one:#?}"))
    };
    assert!(
        by_kind(NotificationKind::OrderConfirmed)
            .body
            .contains("o-confirmed")
    );
    let rejected = by_kind(NotificationKind::OrderRejected);
    assert!(
        rejected.body.contains("INSUFFICIENT_STOCK"),
        "{}",
        rejected.body
    );
    assert!(rejected.body.contains("only 2 left"), "{}", rejected.body);
    assert!(
        by_kind(NotificationKind::OrderShipped)
            .body
            .contains("TRACK-o-shipped")
    );
    assert!(
        by_kind(NotificationKind::OrderCancelled)
            .body
            .contains("changed my mind")
    );
    assert!(one.iter().all(|n| n.user_id == "u1"));

    let two = app.wait_for("u2", 1).await;
    assert_eq!(two.len(), 1);
    assert_eq!(two[0].kind(), NotificationKind::PaymentRefunded);
    assert_eq!(two[0].title, "You were refunded 42.50 EUR");
    assert!(two[0].body.contains("o-refunded"), "{}", two[0].body);

    let mailed = app.wait_for_mail("u1", 5).await;
    assert_eq!(mailed.len(), 5, "welcome and four orders: {mailed:#?}");
    assert!(!app.mailbox_file("u2").exists(), "no address, no mail");
    assert_eq!(
        app.list("u1", Default::default())
            .await
            .expect("list")
            .unread_count,
        5
    );
    assert!(app.wait_for("u3", 0).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn the_same_event_delivered_twice_is_stored_once() {
    let app = start().await;
    app.register("u1", "one@example.com", "One").await;
    app.wait_for("u1", 1).await;
    let event = shipped("u1", "o-1");
    let id = polyshop_platform::new_id();
    // Different Nats-Msg-Ids defeat the broker's dedupe (as a redrive does); the event id
    // is the same.
    app.publish_as(&event, &id, &format!("{id}:a")).await;
    app.publish_as(&event, &id, &format!("{id}:b")).await;
    // The consumer handles a stream in order: once this marker is in, both copies were seen.
    app.publish(&shipped("u1", "o-marker")).await;

    let found = app.wait_for("u1", 3).await;
    assert_eq!(found.len(), 3, "welcome, o-1 once, marker: {found:#?}");
    assert_eq!(found.iter().filter(|n| n.source_event_id == id).count(), 1);
    // Mail is sent in the order it was recorded: once the marker's is out, o-1's is too.
    let mailed = app.wait_for_mail("u1", 3).await;
    let marker = &found[0].notification_id;
    assert_eq!(mailed[2]["notification_id"], marker.as_str(), "{mailed:#?}");
    assert_eq!(mailed.len(), 3, "{mailed:#?}");
    app.stop().await;
}

#[tokio::test]
async fn another_user_can_neither_see_nor_mark_a_notification() {
    let app = start().await;
    app.publish(&shipped("owner", "o-1")).await;
    let mine = app.wait_for("owner", 1).await;
    let id = mine[0].notification_id.clone();

    let theirs = app
        .list("intruder", Default::default())
        .await
        .expect("list");
    assert!(theirs.notifications.is_empty());
    assert_eq!(theirs.unread_count, 0);
    let err = app
        .mark_read("intruder", &id)
        .await
        .expect_err("not theirs");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "NOTIFICATION_NOT_FOUND");
    let missing = app
        .mark_read("intruder", "0190b7a2-0000-7000-8000-000000000000")
        .await;
    assert_eq!(
        missing.expect_err("missing").message(),
        err.message(),
        "no existence leak"
    );
    assert!(!app.wait_for("owner", 1).await[0].read, "still unread");

    let service = app
        .tokens
        .service("polyshop-order", polyshop_notification::SERVICE_NAME);
    let err = app
        .client()
        .list_notifications(bearer(pb::ListNotificationsRequest::default(), &service))
        .await
        .expect_err("a service has no notifications");
    // The contract lists no service among ListNotifications' callers: refused at the door.
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = app
        .client()
        .list_notifications(pb::ListNotificationsRequest::default())
        .await
        .expect_err("anonymous");
    assert_eq!(err.code(), Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test]
async fn marking_read_is_idempotent_and_lowers_the_unread_count() {
    let app = start().await;
    app.publish(&shipped("u1", "o-1")).await;
    app.publish(&shipped("u1", "o-2")).await;
    let found = app.wait_for("u1", 2).await;
    let id = &found[0].notification_id;

    let first = app.mark_read("u1", id).await.expect("mark");
    assert!(first.read);
    let read_time = first.read_time.expect("read time");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = app.mark_read("u1", id).await.expect("mark again");
    assert_eq!(again.read_time, Some(read_time), "read_time is set once");

    let all = app.list("u1", Default::default()).await.expect("list");
    assert_eq!(all.notifications.len(), 2);
    assert_eq!(all.unread_count, 1);
    let unread = app
        .list(
            "u1",
            pb::ListNotificationsRequest {
                unread_only: true,
                ..Default::default()
            },
        )
        .await
        .expect("unread");
    assert_eq!(unread.notifications.len(), 1);
    assert_ne!(&unread.notifications[0].notification_id, id);
    let err = app.mark_read("u1", "").await.expect_err("empty id");
    assert_eq!(err.code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn pages_are_newest_first_and_cover_every_notification_once() {
    let app = start().await;
    let mut published = Vec::new();
    for i in 0..5 {
        published.push(app.publish(&shipped("u1", &format!("o-{i}"))).await);
    }
    app.wait_for("u1", 5).await;

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let request = pb::ListNotificationsRequest {
            page_size: 2,
            page_token: token.clone(),
            unread_only: false,
        };
        let page = app.list("u1", request).await.expect("page");
        pages += 1;
        assert!(page.notifications.len() <= 2);
        assert_eq!(page.unread_count, 5, "the count covers all pages");
        seen.extend(page.notifications);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let sources: Vec<_> = seen.iter().map(|n| n.source_event_id.clone()).collect();
    published.reverse();
    assert_eq!(sources, published, "newest first, each once");

    let bad = pb::ListNotificationsRequest {
        page_token: "nonsense".into(),
        ..Default::default()
    };
    let err = app.list("u1", bad).await.expect_err("bad token");
    assert_eq!(err.code(), Code::InvalidArgument);
    let violations = err
        .get_error_details()
        .bad_request()
        .expect("bad request")
        .clone();
    assert_eq!(violations.field_violations[0].field, "page_token");
    app.stop().await;
}

#[tokio::test]
async fn mail_goes_to_the_smtp_relay_and_a_refused_delivery_is_retried() {
    // The relay refuses the first attempt: the notification is stored at once, and the mail
    // is tried again after its backoff and accepted, once.
    let (relay, transcript) = fake_smtp(1).await;
    let app = start_with(|s| s.notification.smtp_addr = Some(relay.to_string())).await;
    app.register("u-smtp", "ada@example.com", "Ada").await;

    let found = app.wait_for("u-smtp", 1).await;
    assert_eq!(found.len(), 1);
    let message_id = format!("<{}@polyshop.local>", found[0].notification_id);
    eventually_some("the retried mail", EVENTUALLY, async || {
        message_ids(&transcript)
            .contains_key(&message_id)
            .then_some(())
    })
    .await;
    assert_eq!(message_ids(&transcript).get(&message_id), Some(&1));
    let lines = transcript.lock().expect("transcript").clone();
    let rcpts = lines
        .iter()
        .filter(|l| *l == "RCPT TO:<ada@example.com>")
        .count();
    assert_eq!(rcpts, 2, "refused once, then accepted: {lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("EHLO ")), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l == "MAIL FROM:<no-reply@polyshop.local>"),
        "{lines:#?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| *l == "Subject: Welcome to Polyshop")
            .count(),
        1
    );
    assert!(
        lines.contains(&format!("Message-ID: {message_id}")),
        "{lines:#?}"
    );
    assert!(
        !app.mailbox_file("u-smtp").exists(),
        "SMTP replaces the mailbox"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_poison_event_does_not_block_the_events_after_it() {
    // With this many deliveries, a poison event that were merely retried would hold up the
    // stream far longer than the test waits: it must be dead-lettered at once.
    let app = start_with(|s| s.events.max_deliver = 50).await;
    let poison = polyshop_platform::new_id();
    app.publish_raw(
        "polyshop.order.confirmed",
        "polyshop.order.v1.OrderConfirmed",
        vec![0xff, 0xff, 0xff, 0xff],
        &poison,
        &poison,
    )
    .await;
    app.publish(&shipped("u1", "o-after-poison")).await;

    let found = app.wait_for("u1", 1).await;
    assert!(found[0].body.contains("o-after-poison"));
    let mut letters = Vec::new();
    for _ in 0..100 {
        letters = dlq::list(&app.js).await.unwrap_or_default();
        if !letters.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert_eq!(letters[0].event_id, poison);
    assert_eq!(letters[0].consumer, "notification-order-events");
    assert!(
        letters[0].reason.contains("invalid event"),
        "{}",
        letters[0].reason
    );
    app.stop().await;
}

#[tokio::test]
async fn events_become_notifications_once_on_postgres() {
    let Some(url) = polyshop_platform::testing::postgres_database("notification").await else {
        return;
    };
    let app = start_with(|s| s.notification.database_url = Some(url.into())).await;
    app.register("u-pg", "pg@example.com", "Pat").await;
    app.wait_for("u-pg", 1).await;
    let event = shipped("u-pg", "o-pg");
    let id = polyshop_platform::new_id();
    app.publish_as(&event, &id, &format!("{id}:a")).await;
    app.publish_as(&event, &id, &format!("{id}:b")).await;
    app.publish(&shipped("u-pg", "o-marker")).await;

    let found = app.wait_for("u-pg", 3).await;
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_eq!(found.iter().filter(|n| n.source_event_id == id).count(), 1);
    let read = app
        .mark_read("u-pg", &found[0].notification_id)
        .await
        .expect("mark");
    assert!(read.read);
    let page = app.list("u-pg", Default::default()).await.expect("list");
    assert_eq!(page.unread_count, 2);
    let mailed = app.wait_for_mail("u-pg", 3).await;
    assert_eq!(
        mailed[2]["notification_id"],
        found[0].notification_id.as_str()
    );
    assert_eq!(mailed.len(), 3, "{mailed:#?}");
    app.stop().await;
}
