//! The saga journal commits the writes of concurrent sagas together, and one saga's failing
//! write does not cost another saga its step.

use polyshop_order::{
    app::ports::{FIRST_EPOCH, Fence},
    codec,
    domain::{
        Money, Order, OrderError, OrderEvent, OrderStatus, PlaceOrder, Rejection, RequestedLine,
        ShippingAddress,
        saga::{Saga, Step},
    },
    store::{self, Created, EventStore, SagaJournal, SagaStore},
};
use polyshop_platform::{db, events::outbox};

/// The instance that creates the sagas here.
const OWNER: &str = "instance-a";

/// The claim a saga's creator holds.
fn fence(saga: &Saga) -> Fence {
    Fence {
        order_id: saga.order_id.clone(),
        epoch: FIRST_EPOCH,
    }
}

fn request(key: &str) -> PlaceOrder {
    PlaceOrder {
        idempotency_key: key.into(),
        lines: vec![RequestedLine {
            product_id: "p1".into(),
            quantity: 1,
        }],
        shipping: ShippingAddress::default(),
        payment_method_token: "tok_visa".into(),
    }
}

fn created(order_id: &str) -> OrderEvent {
    OrderEvent::Created(Box::new(Order::placed(
        order_id.into(),
        "u1".into(),
        vec![],
        Money {
            amount_minor: 990,
            currency: "USD".into(),
        },
        ShippingAddress::default(),
    )))
}

/// Fresh, unmigrated order databases: SQLite in a temporary directory (kept while the guard
/// lives), and PostgreSQL when the run has one.
async fn raw_dbs(test: &str) -> Vec<(Option<tempfile::TempDir>, sea_orm::DatabaseConnection)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = db::connect(dir.path(), "order", &Default::default())
        .await
        .expect("db");
    let mut dbs = vec![(Some(dir), sqlite)];
    if let Some(url) = polyshop_platform::testing::postgres_database(test).await {
        dbs.push((
            None,
            db::connect_url(&url, "order").await.expect("postgres"),
        ));
    }
    dbs
}

/// A migrated SQLite order database (kept while the guard lives).
async fn sqlite_db() -> (tempfile::TempDir, sea_orm::DatabaseConnection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = db::connect(dir.path(), "order", &Default::default())
        .await
        .expect("db");
    store::migrate(&conn).await.expect("migrate");
    (dir, conn)
}

/// Migrated order databases, as [`raw_dbs`].
async fn order_dbs(test: &str) -> Vec<(Option<tempfile::TempDir>, sea_orm::DatabaseConnection)> {
    let dbs = raw_dbs(test).await;
    for (_, conn) in &dbs {
        store::migrate(conn).await.expect("migrate");
    }
    dbs
}

#[tokio::test]
async fn a_conflicting_write_fails_alone_and_the_others_commit() {
    let (_dir, conn) = sqlite_db().await;
    let events = EventStore::new(conn.clone(), 10);
    let sagas = SagaStore::new(conn.clone());
    let journal = SagaJournal::start(events.clone());

    let mut claimed = Vec::new();
    for i in 0..20 {
        let id = format!("order-{i:02}");
        let saga = Saga::started(&id, "u1", request(&format!("k{i}")));
        let stored = journal
            .create(&[created(&id)], &saga, OWNER, 0)
            .await
            .expect("create");
        assert!(
            matches!(stored, Created::New(ref order) if order.id == id),
            "{stored:?}"
        );
        claimed.push(saga);
    }
    // order-00 already has its first event: appending another "first" event conflicts.
    let first = &claimed[0];

    let again = [created(&first.order_id)];
    let first_fence = fence(first);
    let conflicting = journal.append(None, &again, first, &first_fence);
    let saves = claimed[1..].iter().map(|saga| {
        let mut saga = saga.clone();
        saga.step = Step::Charge;
        saga.reservation_id = Some(format!("order-{}", saga.order_id));
        let journal = journal.clone();
        async move { journal.save(&saga, &fence(&saga)).await }
    });
    let (conflict, saved) = tokio::join!(conflicting, futures::future::join_all(saves));

    assert!(
        matches!(conflict, Err(OrderError::Conflict)),
        "{conflict:?}"
    );
    assert!(saved.iter().all(Result::is_ok), "{saved:?}");
    for saga in &claimed[1..] {
        let stored = sagas.get(&saga.order_id).await.expect("get").expect("saga");
        assert_eq!(stored.step, Step::Charge, "{}", saga.order_id);
    }
    let history = events.history(&first.order_id).await.expect("history");
    assert_eq!(
        history.len(),
        1,
        "the conflicting append left nothing behind"
    );
}

#[tokio::test]
async fn a_second_saga_under_a_taken_key_finds_the_first_and_writes_nothing() {
    let (_dir, conn) = sqlite_db().await;
    let events = EventStore::new(conn.clone(), 10);
    let journal = SagaJournal::start(events.clone());

    let first = Saga::started("order-a", "u1", request("same"));
    let second = Saga::started("order-b", "u1", request("same"));
    let (a_events, b_events) = ([created("order-a")], [created("order-b")]);
    let (a, b) = tokio::join!(
        journal.create(&a_events, &first, OWNER, 0),
        journal.create(&b_events, &second, OWNER, 0)
    );
    assert!(matches!(a, Ok(Created::New(_))), "{a:?}");
    assert!(
        matches!(b, Ok(Created::Existing(ref id)) if id == "order-a"),
        "{b:?}"
    );
    let sagas = SagaStore::new(conn.clone());
    assert!(sagas.get("order-b").await.expect("get").is_none());
    assert!(events.history("order-b").await.expect("history").is_empty());
    assert_eq!(events.history("order-a").await.expect("history").len(), 1);
}

#[tokio::test]
async fn a_saga_round_trips_with_its_retry_state_and_the_stuck_ones_are_listed() {
    for (_dir, conn) in order_dbs("saga round trip").await {
        saga_round_trip(conn).await;
    }
}

async fn saga_round_trip(conn: sea_orm::DatabaseConnection) {
    let journal = SagaJournal::start(EventStore::new(conn.clone(), 10));
    let sagas = SagaStore::new(conn.clone());
    let mut saga = Saga::started("order-r", "u1", request("r"));
    journal
        .create(&[created("order-r")], &saga, OWNER, 0)
        .await
        .expect("create");
    saga.step = Step::Compensate;
    saga.payment_id = Some("pay-1".into());
    saga.reason = Some(Rejection::InsufficientStock);
    saga.attempts = 7;
    saga.failing_since = Some(1_000);
    saga.next_attempt_at = 2_000;
    saga.stuck = Some("refund refused: switched off".into());
    journal.save(&saga, &fence(&saga)).await.expect("save");
    assert_eq!(sagas.get("order-r").await.expect("get"), Some(saga.clone()));
    assert_eq!(
        sagas.due(1_999, 10).await.expect("due"),
        Vec::<String>::new(),
        "waiting"
    );
    assert_eq!(sagas.due(2_000, 10).await.expect("due"), ["order-r"]);
    let stuck = sagas.stuck().await.expect("stuck");
    assert_eq!(stuck.len(), 1);
    assert_eq!(
        (stuck[0].step.as_str(), stuck[0].why.as_str()),
        ("compensate", "refund refused: switched off")
    );
}

#[tokio::test]
async fn an_unknown_stored_step_is_an_error_not_a_finished_saga() {
    let (_dir, conn) = sqlite_db().await;
    let journal = SagaJournal::start(EventStore::new(conn.clone(), 10));
    let saga = Saga::started("order-u", "u1", request("u"));
    journal
        .create(&[created("order-u")], &saga, OWNER, 0)
        .await
        .expect("create");
    sea_orm::ConnectionTrait::execute_unprepared(&conn, "UPDATE sagas SET step = 'validate'")
        .await
        .expect("update");
    let got = SagaStore::new(conn.clone()).get("order-u").await;
    assert!(
        matches!(got, Err(OrderError::UnknownSagaState { .. })),
        "{got:?}"
    );
}

/// Loads `order_id` by replaying every stored event, ignoring snapshots.
async fn full_replay(events: &EventStore, order_id: &str) -> Order {
    let decoded: Vec<_> = events
        .history(order_id)
        .await
        .expect("history")
        .iter()
        .map(|r| {
            (
                codec::decode(&r.kind, &r.payload).expect("decode").event,
                r.recorded_at,
            )
        })
        .collect();
    Order::replay(None, &decoded).expect("created")
}

async fn snapshot_version(conn: &sea_orm::DatabaseConnection, order_id: &str) -> Option<i64> {
    use sea_orm::ConnectionTrait;
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT version FROM order_snapshots WHERE order_id = '{order_id}'"),
        ))
        .await
        .expect("query")?;
    row.try_get("", "version").ok()
}

#[tokio::test]
async fn loading_from_a_snapshot_plus_later_events_equals_a_full_replay() {
    for (_dir, conn) in order_dbs("snapshots").await {
        snapshot_equals_replay(conn).await;
    }
}

async fn snapshot_equals_replay(conn: sea_orm::DatabaseConnection) {
    // Every 2 events: a snapshot at v2, then one event after it.
    let events = EventStore::new(conn.clone(), 2);
    let placed = events
        .append(None, &[created("order-s")])
        .await
        .expect("created");
    let confirmed = events
        .append(Some(&placed), &[placed.confirm("pay-1").expect("pending")])
        .await
        .expect("confirmed");
    let shipped = events
        .append(
            Some(&confirmed),
            &[confirmed.ship("T-1").expect("confirmed")],
        )
        .await
        .expect("shipped");
    assert_eq!(
        snapshot_version(&conn, "order-s").await,
        Some(2),
        "snapshot taken"
    );
    let loaded = events.load("order-s").await.expect("load").expect("order");
    assert_eq!(loaded, full_replay(&events, "order-s").await);
    assert_eq!((loaded.status, loaded.version), (OrderStatus::Shipped, 3));
    assert_eq!(loaded, shipped);

    // The default policy: a terminal order is snapshotted even when N is far away.
    let events = EventStore::new(conn.clone(), 1_000);
    let placed = events
        .append(None, &[created("order-t")])
        .await
        .expect("created");
    assert_eq!(
        snapshot_version(&conn, "order-t").await,
        None,
        "no snapshot on the hot path"
    );
    let rejected = placed
        .reject(Rejection::PaymentDeclined, "card declined")
        .expect("pending");
    events
        .append(Some(&placed), &[rejected])
        .await
        .expect("rejected");
    assert_eq!(
        snapshot_version(&conn, "order-t").await,
        Some(2),
        "terminal: snapshot"
    );
    let loaded = events.load("order-t").await.expect("load").expect("order");
    assert_eq!(loaded, full_replay(&events, "order-t").await);
    assert_eq!(loaded.status, OrderStatus::Rejected);
}

#[tokio::test]
async fn payloads_stored_as_base64_text_are_converted_to_bytes_once() {
    for (_dir, conn) in raw_dbs("payload conversion").await {
        payload_conversion(conn).await;
    }
}

async fn payload_conversion(conn: sea_orm::DatabaseConnection) {
    use base64::Engine;
    use prost::Message;
    use sea_orm::ConnectionTrait;
    // A database as the previous version left it: SQL migrations only, payloads as base64.
    db::migrate(&conn, &[store::MIGRATIONS, outbox::MIGRATIONS].concat())
        .await
        .expect("migrate");
    let order = Order::placed(
        "order-b64".into(),
        "u1".into(),
        vec![],
        Money {
            amount_minor: 990,
            currency: "USD".into(),
        },
        ShippingAddress::default(),
    );
    let created = codec::outgoing(
        "order-b64",
        "u1",
        &OrderEvent::Created(Box::new(order)),
        "e1",
        10,
    );
    let text = base64::engine::general_purpose::STANDARD.encode(&created.payload);
    let snapshot = base64::engine::general_purpose::STANDARD.encode(
        codec::order(&Order::replay(None, &[(created_event(), 10)]).expect("order"))
            .encode_to_vec(),
    );
    for sql in [
        format!(
            "INSERT INTO order_events (order_id, version, event_id, kind, payload, recorded_at) VALUES ('order-b64', 1, 'e1', 'created', '{text}', 10)"
        ),
        format!(
            "INSERT INTO order_snapshots (order_id, version, payload, taken_at) VALUES ('order-b64', 1, '{snapshot}', 10)"
        ),
        format!(
            "INSERT INTO order_view (order_id, user_id, status, version, payload, updated_at) VALUES ('order-b64', 'u1', 'pending', 1, '{snapshot}', 10)"
        ),
    ] {
        conn.execute_unprepared(&sql).await.expect("old row");
    }

    store::migrate(&conn).await.expect("convert");
    store::migrate(&conn)
        .await
        .expect("a second start converts nothing");
    let events = EventStore::new(conn.clone(), 10);
    let history = events.history("order-b64").await.expect("history");
    assert_eq!(history[0].payload, created.payload, "the same bytes");
    let loaded = events
        .load("order-b64")
        .await
        .expect("load")
        .expect("order");
    assert_eq!((loaded.id.as_str(), loaded.version), ("order-b64", 1));
    let listed = store::ReadModel::new(conn.clone())
        .list(&store::ListFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
}

fn created_event() -> OrderEvent {
    created("order-b64")
}
