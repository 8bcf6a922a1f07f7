//! Black-box tests of the inventory service through the generated client, against a real
//! server on 127.0.0.1:0 with a fresh SQLite file (and PostgreSQL when configured).

mod common;

use std::{sync::Arc, time::Duration};

use common::{
    ADJUSTED, CONFIRMED, RELEASED, RESERVED, Running, get_stock, items, levels, reserve, set_stock,
    start, start_with,
};
use polyshop::inventory::v1 as pb;
use polyshop_inventory::{app::Sweeper, store};
use polyshop_platform::{
    config::Settings,
    events::outbox::OutboxSignal,
    now_millis,
    testing::{self, bearer, eventually, eventually_some, expect_published, last_event},
};
use tonic::Code;
use tonic_types::StatusExt;

fn settings(dir: &tempfile::TempDir) -> Settings {
    testing::settings(dir.path())
}

fn reason(err: &tonic::Status) -> String {
    err.get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

async fn confirm(server: &Running, id: &str) -> Result<pb::Reservation, tonic::Status> {
    let request = pb::ConfirmReservationRequest {
        reservation_id: id.into(),
    };
    let response = server
        .client()
        .confirm_reservation(bearer(request, &server.service()))
        .await?;
    Ok(response.into_inner().reservation.expect("reservation"))
}

async fn release(server: &Running, id: &str, why: &str) -> Result<pb::Reservation, tonic::Status> {
    let request = pb::ReleaseReservationRequest {
        reservation_id: id.into(),
        reason: why.into(),
    };
    let response = server
        .client()
        .release_reservation(bearer(request, &server.service()))
        .await?;
    Ok(response.into_inner().reservation.expect("reservation"))
}

#[tokio::test]
async fn admins_set_stock_and_anyone_reads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let set = set_stock(&server, "p-1", 7).await;
    assert_eq!(
        (
            set.quantity_on_hand,
            set.quantity_reserved,
            set.quantity_available
        ),
        (7, 0, 7)
    );
    assert!(set.update_time.is_some());

    // Public: no token needed.
    let read = get_stock(&server, "p-1").await;
    assert_eq!(read, set);

    // A product never stocked is out of stock, not unknown.
    let never = get_stock(&server, "never-stocked").await;
    assert_eq!(
        (
            never.quantity_on_hand,
            never.quantity_reserved,
            never.quantity_available
        ),
        (0, 0, 0)
    );
    assert_eq!(never.update_time, None);

    let err = server
        .client()
        .get_stock(pb::GetStockRequest {
            product_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<_> = err
        .get_error_details()
        .bad_request()
        .expect("BadRequest")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["product_id"]);
    server.stop().await;
}

#[tokio::test]
async fn customers_may_not_set_stock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let request = pb::SetStockRequest {
        product_id: "p-1".into(),
        quantity_on_hand: 5,
    };
    let err = server
        .client()
        .set_stock(bearer(request, &server.customer()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        levels(&server, "p-1").await,
        (0, 0, 0),
        "nothing was written"
    );
    server.stop().await;
}

#[tokio::test]
async fn stock_of_a_product_the_catalog_never_created_cannot_be_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let request = pb::SetStockRequest {
        product_id: "p-unknown".into(),
        quantity_on_hand: 5,
    };
    let err = server
        .client()
        .set_stock(bearer(request, &server.admin()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::NotFound, "PRODUCT_NOT_FOUND".into())
    );
    assert_eq!(
        err.get_error_details()
            .error_info()
            .expect("ErrorInfo")
            .domain,
        "polyshop.inventory"
    );
    let stock = get_stock(&server, "p-unknown").await;
    assert_eq!(stock.update_time, None, "no stock row was created");
    assert_eq!(server.pending().await, 0, "no StockAdjusted was recorded");
    assert_eq!(testing::published(&server.nats, ADJUSTED).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn only_services_may_reserve_stock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    set_stock(&server, "p-1", 5).await;
    let mut client = server.client();
    let err = reserve(&mut client, &server.customer(), "r-1", &[("p-1", 1)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = reserve(&mut client, &server.admin(), "r-1", &[("p-1", 1)])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "an admin user is still not a service"
    );
    let request = pb::ReserveStockRequest {
        reservation_id: "r-1".into(),
        items: items(&[("p-1", 1)]),
    };
    let err = client.reserve_stock(request).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = client
        .confirm_reservation(pb::ConfirmReservationRequest {
            reservation_id: "r-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(
        levels(&server, "p-1").await,
        (5, 0, 5),
        "nothing was reserved"
    );

    let held = reserve(&mut client, &server.service(), "r-1", &[("p-1", 1)])
        .await
        .expect("service reserves");
    assert_eq!(held.status, pb::ReservationStatus::Held as i32);
    server.stop().await;
}

#[tokio::test]
async fn confirming_a_reservation_takes_the_stock_off_the_shelf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    set_stock(&server, "p-1", 10).await;
    set_stock(&server, "p-2", 4).await;
    let mut client = server.client();
    let held = reserve(
        &mut client,
        &server.service(),
        "order-1",
        &[("p-2", 4), ("p-1", 3)],
    )
    .await
    .expect("reserve");
    assert_eq!(held.reservation_id, "order-1");
    assert_eq!(
        held.items,
        items(&[("p-1", 3), ("p-2", 4)]),
        "items come back in product order"
    );
    let expires = held.expire_time.expect("expire time").seconds
        - held.create_time.expect("create time").seconds;
    assert_eq!(expires, 900, "the default hold is 15 minutes");
    assert_eq!(levels(&server, "p-1").await, (10, 3, 7));
    assert_eq!(levels(&server, "p-2").await, (4, 4, 0));

    let confirmed = confirm(&server, "order-1").await.expect("confirm");
    assert_eq!(confirmed.status, pb::ReservationStatus::Confirmed as i32);
    assert_eq!(levels(&server, "p-1").await, (7, 0, 7));
    assert_eq!(levels(&server, "p-2").await, (0, 0, 0));

    // A repeat is a no-op that answers the same.
    let again = confirm(&server, "order-1").await.expect("confirm again");
    assert_eq!(again, confirmed);
    assert_eq!(
        levels(&server, "p-1").await,
        (7, 0, 7),
        "confirming twice sells once"
    );

    // Releasing a confirmed reservation (a cancelled order) puts the sold stock back on hand,
    // once.
    let returned = release(&server, "order-1", "order cancelled")
        .await
        .expect("return");
    assert_eq!(returned.status, pb::ReservationStatus::Released as i32);
    assert_eq!(levels(&server, "p-1").await, (10, 0, 10));
    assert_eq!(levels(&server, "p-2").await, (4, 0, 4));
    release(&server, "order-1", "again").await.expect("repeat");
    assert_eq!(levels(&server, "p-1").await, (10, 0, 10), "returned once");
    let err = confirm(&server, "order-1").await.unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "RESERVATION_RELEASED".into())
    );
    let err = confirm(&server, "no-such-order").await.unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::NotFound, "RESERVATION_NOT_FOUND".into())
    );
    server.stop().await;
}

#[tokio::test]
async fn releasing_a_reservation_returns_the_stock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    set_stock(&server, "p-1", 10).await;
    let mut client = server.client();
    reserve(&mut client, &server.service(), "order-1", &[("p-1", 6)])
        .await
        .expect("reserve");
    assert_eq!(levels(&server, "p-1").await, (10, 6, 4));

    let released = release(&server, "order-1", "payment declined")
        .await
        .expect("release");
    assert_eq!(released.status, pb::ReservationStatus::Released as i32);
    assert_eq!(released.release_reason, "payment declined");
    assert_eq!(levels(&server, "p-1").await, (10, 0, 10));

    let again = release(&server, "order-1", "retry")
        .await
        .expect("release again");
    assert_eq!(
        again.release_reason, "payment declined",
        "a repeat keeps the first reason"
    );
    assert_eq!(
        levels(&server, "p-1").await,
        (10, 0, 10),
        "releasing twice returns once"
    );

    let err = confirm(&server, "order-1").await.unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "RESERVATION_RELEASED".into())
    );
    let err = release(&server, "no-such-order", "").await.unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::NotFound, "RESERVATION_NOT_FOUND".into())
    );
    server.stop().await;
}

#[tokio::test]
async fn a_reservation_holds_every_item_or_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    set_stock(&server, "p-a", 5).await;
    set_stock(&server, "p-b", 1).await;
    let mut client = server.client();
    let token = server.service();
    let err = reserve(
        &mut client,
        &token,
        "order-1",
        &[("p-a", 2), ("p-b", 2), ("p-c", 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "INSUFFICIENT_STOCK".into())
    );
    let details = err.get_error_details();
    let short: Vec<_> = details
        .precondition_failure()
        .expect("PreconditionFailure")
        .violations
        .iter()
        .map(|v| v.subject.clone())
        .collect();
    assert_eq!(
        short,
        ["p-b", "p-c"],
        "every short product is named, the others are not"
    );
    assert_eq!(
        levels(&server, "p-a").await,
        (5, 0, 5),
        "nothing held on the item that had enough"
    );
    assert_eq!(levels(&server, "p-b").await, (1, 0, 1));

    // The failed attempt left no reservation behind: after a restock the same id succeeds.
    set_stock(&server, "p-b", 2).await;
    set_stock(&server, "p-c", 1).await;
    let held = reserve(
        &mut client,
        &token,
        "order-1",
        &[("p-a", 2), ("p-b", 2), ("p-c", 1)],
    )
    .await
    .expect("reserve");
    assert_eq!(held.status, pb::ReservationStatus::Held as i32);
    assert_eq!(levels(&server, "p-a").await, (5, 2, 3));
    assert_eq!(levels(&server, "p-b").await, (2, 2, 0));
    server.stop().await;
}

#[tokio::test]
async fn repeating_a_reservation_id_returns_the_same_reservation_and_reserves_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    set_stock(&server, "p-1", 10).await;
    let mut client = server.client();
    let token = server.service();
    let first = reserve(&mut client, &token, "order-1", &[("p-1", 3)])
        .await
        .expect("reserve");
    let second = reserve(&mut client, &token, "order-1", &[("p-1", 3)])
        .await
        .expect("repeat");
    assert_eq!(second, first);
    assert_eq!(levels(&server, "p-1").await, (10, 3, 7));

    // Even with other items, the stored reservation is the answer and nothing more is held.
    let other = reserve(&mut client, &token, "order-1", &[("p-1", 5)])
        .await
        .expect("repeat with other items");
    assert_eq!(other, first);
    assert_eq!(levels(&server, "p-1").await, (10, 3, 7));

    // A repeat after confirmation still answers with the (now confirmed) reservation.
    confirm(&server, "order-1").await.expect("confirm");
    let after = reserve(&mut client, &token, "order-1", &[("p-1", 3)])
        .await
        .expect("repeat after confirm");
    assert_eq!(after.status, pb::ReservationStatus::Confirmed as i32);
    assert_eq!(levels(&server, "p-1").await, (7, 0, 7));
    server.stop().await;
}

#[tokio::test]
async fn bad_reservation_requests_name_every_offending_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    let mut client = server.client();
    let token = server.service();
    let fields = |err: tonic::Status| -> Vec<String> {
        assert_eq!(err.code(), Code::InvalidArgument);
        let details = err.get_error_details();
        assert_eq!(
            details.error_info().expect("ErrorInfo").domain,
            "polyshop.inventory"
        );
        details
            .bad_request()
            .expect("BadRequest")
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect()
    };
    // Broken contract: the server's layer answers before the handler, so the duplicate
    // product (a domain rule) is not named yet.
    let err = reserve(
        &mut client,
        &token,
        "",
        &[("", 1), ("p-1", 0), ("p-2", 10_001), ("p-1", 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(
        fields(err),
        [
            "reservation_id",
            "items[0].product_id",
            "items[1].quantity",
            "items[2].quantity"
        ]
    );
    // Within the contract, broken only by the domain's rules: blank ids, a product twice.
    let err = reserve(
        &mut client,
        &token,
        " ",
        &[(" ", 1), ("p-1", 1), ("p-2", 10_000), ("p-1", 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(
        fields(err),
        [
            "reservation_id",
            "items[0].product_id",
            "items[3].product_id"
        ]
    );
    let err = reserve(&mut client, &token, "order-1", &[])
        .await
        .unwrap_err();
    assert_eq!(fields(err), ["items"]);
    let too_many: Vec<(String, i32)> = (0..51).map(|i| (format!("p-{i}"), 1)).collect();
    let too_many: Vec<(&str, i32)> = too_many.iter().map(|(p, q)| (p.as_str(), *q)).collect();
    let err = reserve(&mut client, &token, "order-1", &too_many)
        .await
        .unwrap_err();
    assert_eq!(fields(err), ["items"]);
    let err = reserve(&mut client, &token, &"x".repeat(129), &[("p-1", 1)])
        .await
        .unwrap_err();
    assert_eq!(fields(err), ["reservation_id"]);
    server.stop().await;
}

#[tokio::test]
async fn stock_cannot_be_set_below_what_is_reserved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    set_stock(&server, "p-1", 10).await;
    let mut client = server.client();
    reserve(&mut client, &server.service(), "order-1", &[("p-1", 4)])
        .await
        .expect("reserve");

    let request = pb::SetStockRequest {
        product_id: "p-1".into(),
        quantity_on_hand: 3,
    };
    let err = client
        .set_stock(bearer(request, &server.admin()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "BELOW_RESERVED".into())
    );
    assert_eq!(levels(&server, "p-1").await, (10, 4, 6), "unchanged");

    let exact = set_stock(&server, "p-1", 4).await;
    assert_eq!(
        (
            exact.quantity_on_hand,
            exact.quantity_reserved,
            exact.quantity_available
        ),
        (4, 4, 0)
    );

    let request = pb::SetStockRequest {
        product_id: "p-1".into(),
        quantity_on_hand: -1,
    };
    let err = client
        .set_stock(bearer(request, &server.admin()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let field = err
        .get_error_details()
        .bad_request()
        .expect("BadRequest")
        .field_violations[0]
        .field
        .clone();
    assert_eq!(field, "quantity_on_hand");
    server.stop().await;
}

#[tokio::test]
async fn expired_holds_are_released_by_the_sweeper() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = settings(&dir);
    s.inventory.reservation_hold_secs = 1;
    // The server's own sweeper stays out of the way; this test drives one deterministically.
    s.inventory.sweep_interval_secs = 3600;
    let server = start(s.clone()).await;
    set_stock(&server, "p-1", 5).await;
    let mut client = server.client();
    let held = reserve(&mut client, &server.service(), "order-1", &[("p-1", 2)])
        .await
        .expect("reserve");
    let expire_time = held.expire_time.expect("expire time");
    let expires_at = expire_time.seconds * 1000 + i64::from(expire_time.nanos / 1_000_000);
    assert!(expires_at <= now_millis() + 1_000);

    // A second repository on the server's database; the server's relay publishes what it
    // writes to the outbox. It starts once the relay is idle: on SQLite a transaction of this
    // second connection that read before the relay deleted a row could not write after.
    eventually("the outbox drained", async || server.pending().await == 0).await;
    let sweeper = Sweeper::new(
        Arc::new(store::SeaInventoryRepository::new(
            server.database().await,
            OutboxSignal::new(),
        )),
        Duration::from_secs(3600),
    );
    assert_eq!(
        sweeper.try_sweep_once(expires_at - 1).await.expect("sweep"),
        0,
        "not expired yet"
    );
    assert_eq!(levels(&server, "p-1").await, (5, 2, 3));
    assert_eq!(sweeper.try_sweep_once(expires_at).await.expect("sweep"), 1);
    assert_eq!(levels(&server, "p-1").await, (5, 0, 5));
    assert_eq!(
        sweeper
            .try_sweep_once(expires_at + 60_000)
            .await
            .expect("sweep"),
        0,
        "released once"
    );

    let err = confirm(&server, "order-1").await.unwrap_err();
    assert_eq!(reason(&err), "RESERVATION_RELEASED");
    let released = release(&server, "order-1", "")
        .await
        .expect("release is idempotent");
    assert_eq!(released.release_reason, "hold expired");
    // The sweeper's release was published, once.
    expect_published(&server.nats, RELEASED, 1).await;
    let event: pb::StockReleased = last_event(&server.nats, RELEASED).await;
    assert_eq!(event.reservation, Some(released));
    server.stop().await;
}

#[tokio::test]
async fn the_server_runs_its_sweeper_on_the_configured_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = settings(&dir);
    s.inventory.reservation_hold_secs = 1;
    s.inventory.sweep_interval_secs = 1;
    let server = start(s).await;
    set_stock(&server, "p-1", 5).await;
    let mut client = server.client();
    reserve(&mut client, &server.service(), "order-1", &[("p-1", 2)])
        .await
        .expect("reserve");
    // 10 s is ample for a 1 s hold swept every second; with the default hold it is 15 minutes.
    eventually_some(
        "the sweeper releases the hold",
        Duration::from_secs(10),
        async || (levels(&server, "p-1").await.1 == 0).then_some(()),
    )
    .await;
    assert_eq!(levels(&server, "p-1").await, (5, 0, 5));
    server.stop().await;
}

#[tokio::test]
async fn stock_and_reservations_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(settings(&dir)).await;
    set_stock(&server, "p-1", 10).await;
    let mut client = server.client();
    let held = reserve(&mut client, &server.service(), "order-1", &[("p-1", 4)])
        .await
        .expect("reserve");
    let nats = server.stop().await;

    let server = start_with(settings(&dir), nats).await;
    assert_eq!(levels(&server, "p-1").await, (10, 4, 6));
    let mut client = server.client();
    let again = reserve(&mut client, &server.service(), "order-1", &[("p-1", 4)])
        .await
        .expect("repeat");
    assert_eq!(again, held, "the reservation is remembered");
    confirm(&server, "order-1")
        .await
        .expect("confirm after restart");
    assert_eq!(levels(&server, "p-1").await, (6, 0, 6));
    // The repeat after the restart published nothing.
    expect_published(&server.nats, RESERVED, 1).await;
    expect_published(&server.nats, CONFIRMED, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn reserve_confirm_and_release_work_on_postgres() {
    let Some(url) = testing::postgres_database("inventory service").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = settings(&dir);
    s.inventory.database_url = Some(url.into());
    let server = start(s.clone()).await;
    set_stock(&server, "p-a", 5).await;
    set_stock(&server, "p-b", 1).await;
    let mut client = server.client();
    let token = server.service();

    let err = reserve(&mut client, &token, "order-1", &[("p-a", 2), ("p-b", 2)])
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INSUFFICIENT_STOCK");
    assert_eq!(levels(&server, "p-a").await, (5, 0, 5));

    let first = reserve(&mut client, &token, "order-1", &[("p-a", 2), ("p-b", 1)])
        .await
        .expect("reserve");
    assert_eq!(
        reserve(&mut client, &token, "order-1", &[("p-a", 2)])
            .await
            .expect("repeat"),
        first
    );
    let err = client
        .set_stock(bearer(
            pb::SetStockRequest {
                product_id: "p-a".into(),
                quantity_on_hand: 1,
            },
            &server.admin(),
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "BELOW_RESERVED");

    confirm(&server, "order-1").await.expect("confirm");
    assert_eq!(levels(&server, "p-a").await, (3, 0, 3));
    assert_eq!(levels(&server, "p-b").await, (0, 0, 0));

    reserve(&mut client, &token, "order-2", &[("p-a", 3)])
        .await
        .expect("reserve all");
    release(&server, "order-2", "cancelled")
        .await
        .expect("release");
    assert_eq!(levels(&server, "p-a").await, (3, 0, 3));
    let err = confirm(&server, "order-2").await.unwrap_err();
    assert_eq!(reason(&err), "RESERVATION_RELEASED");

    let held = reserve(&mut client, &token, "order-3", &[("p-a", 1)])
        .await
        .expect("reserve");
    let expire_time = held.expire_time.expect("expire time");
    let expires_at = expire_time.seconds * 1000 + i64::from(expire_time.nanos / 1_000_000);
    // A second repository on the server's database; the server's relay publishes what it
    // writes to the outbox. It starts once the relay is idle: on SQLite a transaction of this
    // second connection that read before the relay deleted a row could not write after.
    eventually("the outbox drained", async || server.pending().await == 0).await;
    let sweeper = Sweeper::new(
        Arc::new(store::SeaInventoryRepository::new(
            server.database().await,
            OutboxSignal::new(),
        )),
        Duration::from_secs(3600),
    );
    assert_eq!(
        sweeper.try_sweep_once(expires_at - 1).await.expect("sweep"),
        0
    );
    assert_eq!(sweeper.try_sweep_once(expires_at).await.expect("sweep"), 1);
    assert_eq!(levels(&server, "p-a").await, (3, 0, 3));

    // Two counts (not the refused one), three holds, one sale, two releases (one swept).
    expect_published(&server.nats, ADJUSTED, 2).await;
    expect_published(&server.nats, RESERVED, 3).await;
    expect_published(&server.nats, CONFIRMED, 1).await;
    expect_published(&server.nats, RELEASED, 2).await;
    let swept: pb::StockReleased = last_event(&server.nats, RELEASED).await;
    let swept = swept.reservation.expect("reservation");
    assert_eq!(
        (swept.reservation_id.as_str(), swept.release_reason.as_str()),
        ("order-3", "hold expired")
    );
    assert_eq!(server.pending().await, 0, "the outbox drained");
    server.stop().await;
}
