//! Two inventory instances sweep one database at once (SQLite always, PostgreSQL when
//! `POLYSHOP_TEST_POSTGRES_URL` is set): every expired hold is released exactly once, so the
//! stock comes out right without a lease. The guarded status change in the repository lets only
//! one of two racing sweeps settle a reservation.

use std::{sync::Arc, time::Duration};

use polyshop_inventory::{
    app::{InventoryRepository, NewReservation, Sweeper},
    domain::ReservationItem,
    store::{self, SeaInventoryRepository},
};
use polyshop_platform::{
    db,
    events::outbox::{self, OutboxSignal},
    testing,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};

const HOLDS: usize = 250;
const STOCK: i32 = 1000;
const RELEASED: &str = "polyshop.inventory.stock.released";

/// Sweeps until a pass finds nothing; returns how many holds this sweeper released.
async fn sweep_all(sweeper: Arc<Sweeper<SeaInventoryRepository>>) -> u64 {
    let mut released = 0;
    loop {
        match sweeper.try_sweep_once(10_000).await.expect("sweep") {
            0 => return released,
            n => released += n,
        }
    }
}

async fn released_events(conn: &DatabaseConnection) -> i64 {
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM event_outbox WHERE subject = '{RELEASED}'"),
        ))
        .await
        .expect("count")
        .expect("row");
    row.try_get("", "n").expect("n")
}

async fn two_sweepers_release_each_expired_hold_once(a: DatabaseConnection, b: DatabaseConnection) {
    db::migrate(&a, &[store::MIGRATIONS, outbox::MIGRATIONS].concat())
        .await
        .expect("migrate");
    let first = Arc::new(SeaInventoryRepository::new(a.clone(), OutboxSignal::new()));
    let second = Arc::new(SeaInventoryRepository::new(b, OutboxSignal::new()));
    let txn = a.begin().await.expect("begin");
    store::ensure_stock(&txn, "p-1", 1)
        .await
        .expect("stock row");
    txn.commit().await.expect("commit");
    first.set_on_hand("p-1", STOCK, 2).await.expect("stock");
    let mut held = 0;
    for i in 0..HOLDS {
        let quantity = i32::try_from(i % 3 + 1).expect("small");
        held += quantity;
        first
            .reserve(NewReservation {
                id: format!("order-{i}"),
                items: vec![ReservationItem {
                    product_id: "p-1".into(),
                    quantity,
                }],
                expires_at: 5_000,
                created_at: 3,
            })
            .await
            .expect("reserve");
    }
    assert_eq!(
        first.stock("p-1").await.expect("stock").map(|s| s.reserved),
        Some(held)
    );

    let every = Duration::from_secs(3600);
    let sweepers = [first.clone(), second].map(|repo| Arc::new(Sweeper::new(repo, every)));
    let [x, y] = sweepers.map(|s| tokio::spawn(sweep_all(s)));
    let (x, y) = (x.await.expect("sweeper"), y.await.expect("sweeper"));

    assert_eq!(
        x + y,
        HOLDS as u64,
        "each hold released by exactly one sweeper ({x} + {y})"
    );
    let stock = first.stock("p-1").await.expect("stock").expect("level");
    assert_eq!(
        (stock.on_hand, stock.reserved),
        (STOCK, 0),
        "every unit back on sale, none twice"
    );
    assert_eq!(
        released_events(&a).await,
        i64::try_from(HOLDS).expect("small"),
        "one release event per hold"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_at_once_never_release_a_hold_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = Default::default();
    let a = db::connect(dir.path(), "inventory", &settings)
        .await
        .expect("db");
    let b = db::connect(dir.path(), "inventory", &settings)
        .await
        .expect("db");
    two_sweepers_release_each_expired_hold_once(a, b).await;
    if let Some(url) = testing::postgres_database("two sweepers").await {
        let a = db::connect_url(&url, "inventory").await.expect("postgres");
        let b = db::connect_url(&url, "inventory").await.expect("postgres");
        two_sweepers_release_each_expired_hold_once(a, b).await;
    }
}
