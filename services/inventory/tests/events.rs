//! The inventory's events against a real nats-server: every stock change publishes its event
//! on `POLYSHOP_INVENTORY` (a repeat or a refused call publishes nothing), events committed
//! while NATS is down arrive once it is back, and `product.created` from the catalog gives a
//! new product a stock row at 0, which SetStock needs.

mod common;

use common::{
    ADJUSTED, CONFIRMED, RELEASED, RESERVED, Running, get_stock, levels, publish_product_created,
    reserve, set_stock, start, start_with,
};
use polyshop::inventory::v1 as pb;
use polyshop_platform::testing::{
    self, EVENTUALLY, NatsServer, bearer, eventually, eventually_some, expect_published,
    last_event, published,
};
use tonic::Code;
use tonic_types::StatusExt;

fn millis(t: Option<&prost_types::Timestamp>) -> i64 {
    let t = t.expect("timestamp");
    t.seconds * 1000 + i64::from(t.nanos / 1_000_000)
}

async fn confirm(server: &Running, id: &str) -> pb::Reservation {
    let request = pb::ConfirmReservationRequest {
        reservation_id: id.into(),
    };
    server
        .client()
        .confirm_reservation(bearer(request, &server.service()))
        .await
        .expect("confirm")
        .into_inner()
        .reservation
        .expect("reservation")
}

async fn release(server: &Running, id: &str, why: &str) -> pb::Reservation {
    let request = pb::ReleaseReservationRequest {
        reservation_id: id.into(),
        reason: why.into(),
    };
    server
        .client()
        .release_reservation(bearer(request, &server.service()))
        .await
        .expect("release")
        .into_inner()
        .reservation
        .expect("reservation")
}

#[tokio::test]
async fn set_reserve_confirm_and_release_publish_their_events_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let nats = &server.nats;

    // SetStock: StockAdjusted with the count before.
    let first = set_stock(&server, "p-1", 10).await;
    expect_published(nats, ADJUSTED, 1).await;
    let adjusted: pb::StockAdjusted = last_event(nats, ADJUSTED).await;
    assert_eq!(adjusted.stock.as_ref(), Some(&first));
    assert_eq!(adjusted.previous_quantity_on_hand, 0);
    assert_eq!(adjusted.occur_time, first.update_time);
    let recount = set_stock(&server, "p-1", 8).await;
    expect_published(nats, ADJUSTED, 2).await;
    let adjusted: pb::StockAdjusted = last_event(nats, ADJUSTED).await;
    assert_eq!(adjusted.stock, Some(recount));
    assert_eq!(adjusted.previous_quantity_on_hand, 10);

    // ReserveStock: StockReserved for a new hold, nothing for a repeat or a refusal.
    let mut client = server.client();
    let token = server.service();
    let held = reserve(&mut client, &token, "order-1", &[("p-1", 3)])
        .await
        .expect("reserve");
    reserve(&mut client, &token, "order-1", &[("p-1", 3)])
        .await
        .expect("repeat");
    reserve(&mut client, &token, "order-big", &[("p-1", 50)])
        .await
        .expect_err("not enough stock");
    expect_published(nats, RESERVED, 1).await;
    let reserved: pb::StockReserved = last_event(nats, RESERVED).await;
    assert_eq!(reserved.reservation.as_ref(), Some(&held));
    assert_eq!(reserved.occur_time, held.create_time);

    // A refused count publishes nothing either.
    let below = pb::SetStockRequest {
        product_id: "p-1".into(),
        quantity_on_hand: 1,
    };
    client
        .set_stock(bearer(below, &server.admin()))
        .await
        .expect_err("below reserved");

    // Confirm: StockConfirmed once.
    let confirmed = confirm(&server, "order-1").await;
    confirm(&server, "order-1").await;
    expect_published(nats, CONFIRMED, 1).await;
    let event: pb::StockConfirmed = last_event(nats, CONFIRMED).await;
    assert_eq!(event.reservation, Some(confirmed));
    assert!(millis(event.occur_time.as_ref()) >= millis(held.create_time.as_ref()));

    // Releasing a confirmed reservation returns the sold stock: StockReleased once.
    let returned = release(&server, "order-1", "order cancelled").await;
    release(&server, "order-1", "again").await;
    expect_published(nats, RELEASED, 1).await;
    let event: pb::StockReleased = last_event(nats, RELEASED).await;
    assert_eq!(event.reservation.as_ref(), Some(&returned));
    assert_eq!(returned.release_reason, "order cancelled");
    assert_eq!(levels(&server, "p-1").await, (8, 0, 8));

    // Releasing a hold: StockReleased.
    reserve(&mut client, &token, "order-2", &[("p-1", 2)])
        .await
        .expect("reserve");
    let released = release(&server, "order-2", "payment declined").await;
    expect_published(nats, RESERVED, 2).await;
    expect_published(nats, RELEASED, 2).await;
    let event: pb::StockReleased = last_event(nats, RELEASED).await;
    assert_eq!(event.reservation, Some(released));

    expect_published(nats, ADJUSTED, 2).await;
    expect_published(nats, CONFIRMED, 1).await;
    assert_eq!(server.pending().await, 0, "the outbox drained");
    server.stop().await;
}

#[tokio::test]
async fn the_server_sweeper_publishes_the_release_of_an_expired_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = testing::settings(dir.path());
    s.inventory.reservation_hold_secs = 1;
    s.inventory.sweep_interval_secs = 1;
    let server = start(s).await;
    set_stock(&server, "p-1", 5).await;
    let mut client = server.client();
    reserve(&mut client, &server.service(), "order-1", &[("p-1", 2)])
        .await
        .expect("reserve");
    expect_published(&server.nats, RELEASED, 1).await;
    let event: pb::StockReleased = last_event(&server.nats, RELEASED).await;
    let reservation = event.reservation.expect("reservation");
    assert_eq!(reservation.reservation_id, "order-1");
    assert_eq!(reservation.release_reason, "hold expired");
    assert_eq!(reservation.status, pb::ReservationStatus::Released as i32);
    assert_eq!(levels(&server, "p-1").await, (5, 0, 5));
    server.stop().await;
}

#[tokio::test]
async fn a_product_created_event_gives_the_product_a_stock_row_at_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let never = get_stock(&server, "p-new").await;
    assert_eq!(never.update_time, None, "no row yet");

    publish_product_created(&server.nats, "p-new").await;
    eventually("a stock row for the new product", async || {
        get_stock(&server, "p-new").await.update_time.is_some()
    })
    .await;
    assert_eq!(levels(&server, "p-new").await, (0, 0, 0));

    // A product already counted keeps its stock; events are applied in order, so once the
    // later product has its row the earlier event was handled.
    set_stock(&server, "p-counted", 5).await;
    publish_product_created(&server.nats, "p-counted").await;
    publish_product_created(&server.nats, "p-later").await;
    eventually("a stock row for the later product", async || {
        get_stock(&server, "p-later").await.update_time.is_some()
    })
    .await;
    assert_eq!(levels(&server, "p-counted").await, (5, 0, 5));
    // Creating a row at 0 is not a count: no StockAdjusted beyond SetStock's.
    expect_published(&server.nats, ADJUSTED, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn a_new_product_can_be_counted_once_its_product_created_event_arrived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(testing::settings(dir.path())).await;
    let mut client = server.client();
    let count = |n| {
        bearer(
            pb::SetStockRequest {
                product_id: "p-new".into(),
                quantity_on_hand: n,
            },
            &server.admin(),
        )
    };
    // Before product.created arrives the product is unknown, as it is right after
    // CreateProduct: callers wait until it is known, as this test does.
    let err = client.set_stock(count(4)).await.unwrap_err();
    let info = err.get_error_details().error_info().cloned().expect("info");
    assert_eq!(
        (err.code(), info.reason.as_str()),
        (Code::NotFound, "PRODUCT_NOT_FOUND")
    );

    publish_product_created(&server.nats, "p-new").await;
    let counted = eventually_some("p-new can be counted", EVENTUALLY, async || {
        client.set_stock(count(4)).await.ok()
    })
    .await;
    let stock = counted.into_inner().stock.expect("stock");
    assert_eq!((stock.quantity_on_hand, stock.quantity_available), (4, 4));
    // The refused count published nothing; the accepted one its StockAdjusted.
    expect_published(&server.nats, ADJUSTED, 1).await;
    let adjusted: pb::StockAdjusted = last_event(&server.nats, ADJUSTED).await;
    assert_eq!(adjusted.previous_quantity_on_hand, 0);
    server.stop().await;
}

#[tokio::test]
async fn changes_made_while_nats_is_down_are_published_when_it_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(testing::settings(dir.path())).await;
    set_stock(&server, "p-1", 10).await;
    expect_published(&server.nats, ADJUSTED, 1).await;

    server.nats.stop();
    set_stock(&server, "p-1", 12).await;
    let mut client = server.client();
    reserve(&mut client, &server.service(), "order-1", &[("p-1", 4)])
        .await
        .expect("reserve while NATS is down");
    let confirmed = confirm(&server, "order-1").await;
    assert_eq!(
        server.pending().await,
        3,
        "committed with the changes, waiting in the outbox"
    );
    assert_eq!(levels(&server, "p-1").await, (8, 0, 8));

    server.nats.restart().await;
    eventually("the outbox drained", async || server.pending().await == 0).await;
    expect_published(&server.nats, ADJUSTED, 2).await;
    expect_published(&server.nats, RESERVED, 1).await;
    expect_published(&server.nats, CONFIRMED, 1).await;
    assert_eq!(published(&server.nats, RELEASED).await, 0);
    let adjusted: pb::StockAdjusted = last_event(&server.nats, ADJUSTED).await;
    assert_eq!(adjusted.previous_quantity_on_hand, 10);
    let event: pb::StockConfirmed = last_event(&server.nats, CONFIRMED).await;
    assert_eq!(event.reservation, Some(confirmed));
    server.stop().await;
}

#[tokio::test]
async fn the_service_starts_and_serves_while_nats_is_down_and_catches_up_when_it_comes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nats = NatsServer::start().await;
    nats.stop();
    let mut server = start_with(testing::settings(dir.path()), nats).await;
    set_stock(&server, "p-1", 3).await;
    assert_eq!(levels(&server, "p-1").await, (3, 0, 3));
    assert_eq!(server.pending().await, 1, "waiting in the outbox");

    server.nats.restart().await;
    eventually("the outbox drained", async || server.pending().await == 0).await;
    expect_published(&server.nats, ADJUSTED, 1).await;
    // The consumer attached once the streams existed.
    publish_product_created(&server.nats, "p-new").await;
    eventually("a stock row for the new product", async || {
        get_stock(&server, "p-new").await.update_time.is_some()
    })
    .await;
    server.stop().await;
}
