//! The saga journal commits the writes of concurrent sagas together, and one saga's failing
//! write does not cost another saga its step.

use polyshop_order::{
    domain::{Money, Order, OrderError, OrderEvent, PlaceOrder, RequestedLine, ShippingAddress},
    store::{self, Created, EventStore, Saga, SagaJournal, SagaStep, SagaStore},
};
use polyshop_platform::{db, events::outbox};

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

/// A migrated order database in a temporary directory (kept while the guard lives).
async fn order_db() -> (tempfile::TempDir, sea_orm::DatabaseConnection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = db::connect(dir.path(), "order", &Default::default())
        .await
        .expect("db");
    db::migrate(&conn, &[store::MIGRATIONS, outbox::MIGRATIONS].concat())
        .await
        .expect("migrate");
    (dir, conn)
}

#[tokio::test]
async fn a_conflicting_write_fails_alone_and_the_others_commit() {
    let (_dir, conn) = order_db().await;
    let events = EventStore::new(conn.clone(), 10);
    let sagas = SagaStore::new(conn.clone());
    let journal = SagaJournal::start(events.clone());

    let mut claimed = Vec::new();
    for i in 0..20 {
        let id = format!("order-{i:02}");
        let mut saga = Saga::claimed(&id, "u1", request(&format!("k{i}")));
        saga.step = SagaStep::Reserve;
        let stored = journal
            .create(&[created(&id)], &saga)
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
    let conflicting = journal.append(None, &again, first);
    let saves = claimed[1..].iter().map(|saga| {
        let mut saga = saga.clone();
        saga.step = SagaStep::Charge;
        saga.reservation_id = Some(format!("order-{}", saga.order_id));
        let journal = journal.clone();
        async move { journal.save(&saga).await }
    });
    let (conflict, saved) = tokio::join!(conflicting, futures::future::join_all(saves));

    assert!(
        matches!(conflict, Err(OrderError::Conflict)),
        "{conflict:?}"
    );
    assert!(saved.iter().all(Result::is_ok), "{saved:?}");
    for saga in &claimed[1..] {
        let stored = sagas.get(&saga.order_id).await.expect("get").expect("saga");
        assert_eq!(stored.step, SagaStep::Charge, "{}", saga.order_id);
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
    let (_dir, conn) = order_db().await;
    let events = EventStore::new(conn.clone(), 10);
    let journal = SagaJournal::start(events.clone());

    let first = Saga::claimed("order-a", "u1", request("same"));
    let second = Saga::claimed("order-b", "u1", request("same"));
    let (a_events, b_events) = ([created("order-a")], [created("order-b")]);
    let (a, b) = tokio::join!(
        journal.create(&a_events, &first),
        journal.create(&b_events, &second)
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
