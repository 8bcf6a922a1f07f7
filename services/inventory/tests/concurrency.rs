//! Reservations under concurrent calls: stock is never oversold and a repeated reservation id
//! is held (and published) once, on SQLite always and on PostgreSQL when
//! `POLYSHOP_TEST_POSTGRES_URL` is set.

mod common;

use common::{RESERVED, Running, levels, reserve, set_stock, start};
use futures::future::join_all;
use polyshop_platform::{
    config::Settings,
    testing::{self, expect_published},
};
use tonic::Code;
use tonic_types::StatusExt;

const STOCK: i32 = 10;
const CALLERS: usize = 50;

async fn sqlite(dir: &tempfile::TempDir) -> Running {
    start(testing::settings(dir.path())).await
}

async fn postgres(dir: &tempfile::TempDir, test: &str) -> Option<Running> {
    let url = testing::postgres_database(test).await?;
    let mut s: Settings = testing::settings(dir.path());
    s.inventory.database_url = Some(url.into());
    Some(start(s).await)
}

/// 50 callers race for 10 units, one unit each, each with its own reservation id.
async fn fifty_callers_race_for_ten_units(server: &Running) {
    set_stock(server, "p-1", STOCK).await;
    let token = server.service();
    let calls = (0..CALLERS).map(|i| {
        let mut client = server.client();
        let token = token.clone();
        async move { reserve(&mut client, &token, &format!("order-{i}"), &[("p-1", 1)]).await }
    });
    let results = join_all(calls).await;

    let won = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let codes: Vec<_> = refused.iter().map(|e| e.code()).collect();
    assert_eq!(
        won, 10,
        "exactly the stock is reserved; refusals: {codes:?}"
    );
    assert_eq!(refused.len(), CALLERS - 10);
    for err in refused {
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert_eq!(
            err.get_error_details()
                .error_info()
                .expect("ErrorInfo")
                .reason,
            "INSUFFICIENT_STOCK"
        );
    }
    assert_eq!(levels(server, "p-1").await, (STOCK, STOCK, 0));
    expect_published(&server.nats, RESERVED, 10).await;
}

/// 10 callers send the same reservation at once: one hold, taken once.
async fn ten_repeats_of_one_reservation_reserve_once(server: &Running) {
    set_stock(server, "p-1", STOCK).await;
    let token = server.service();
    let calls = (0..10).map(|_| {
        let mut client = server.client();
        let token = token.clone();
        async move { reserve(&mut client, &token, "order-1", &[("p-1", 3)]).await }
    });
    let results: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("every repeat succeeds"))
        .collect();
    assert!(
        results.iter().all(|r| *r == results[0]),
        "every caller sees the same reservation"
    );
    assert_eq!(
        levels(server, "p-1").await,
        (STOCK, 3, STOCK - 3),
        "held once"
    );
    expect_published(&server.nats, RESERVED, 1).await;
}

#[tokio::test]
async fn fifty_concurrent_reservations_of_ten_units_never_oversell_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = sqlite(&dir).await;
    fifty_callers_race_for_ten_units(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_reservations_of_ten_units_never_oversell_on_postgres() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(server) = postgres(&dir, "inventory concurrency").await else {
        return;
    };
    fifty_callers_race_for_ten_units(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn concurrent_repeats_of_one_reservation_id_hold_stock_once_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = sqlite(&dir).await;
    ten_repeats_of_one_reservation_reserve_once(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn concurrent_repeats_of_one_reservation_id_hold_stock_once_on_postgres() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(server) = postgres(&dir, "inventory concurrent repeats").await else {
        return;
    };
    ten_repeats_of_one_reservation_reserve_once(&server).await;
    server.stop().await;
}
