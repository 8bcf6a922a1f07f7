//! Two outbox relays of one context over one outbox, as two instances run them: only the lease
//! holder publishes, so each row reaches the stream once and each aggregate's rows in commit
//! order, with the shortest duplicate window NATS allows; and a holder paused
//! past its lease publishes nothing more once it resumes.

use std::{collections::HashMap, time::Duration};

use async_nats::jetstream::{self, stream};
use polyshop_platform::{
    db,
    events::{
        HEADER_ID, OutgoingEvent,
        outbox::{self, OutboxSignal},
        relay::{self, RelayLease},
    },
    shutdown,
    testing::{NatsServer, eventually},
};
use sea_orm::DatabaseConnection;

const STREAM: &str = "RELAYTEST";
const AGGREGATES: usize = 4;
const PER_AGGREGATE: usize = 60;

async fn outbox_db(dir: &tempfile::TempDir) -> DatabaseConnection {
    db::connect(dir.path(), "relay-test", &Default::default())
        .await
        .expect("db")
}

/// A stream with the shortest duplicate window NATS allows (100 ms), so a second relay's late
/// copy of a row is not dropped.
async fn short_window_stream(nats: &NatsServer) -> jetstream::Context {
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("connect"));
    js.create_stream(stream::Config {
        name: STREAM.into(),
        subjects: vec!["relaytest.>".into()],
        duplicate_window: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .expect("stream");
    js
}

/// Row `seq` of aggregate `aggregate`; ids sort in commit order.
fn event(seq: usize, aggregate: usize) -> OutgoingEvent {
    OutgoingEvent {
        id: format!("{seq:08}"),
        subject: format!("relaytest.agg{aggregate}"),
        type_name: "test.Event".into(),
        payload: seq.to_string().into_bytes(),
        traceparent: None,
    }
}

/// The stream's messages in order, as (subject, row id).
async fn stored(js: &jetstream::Context) -> Vec<(String, String)> {
    let stream = js.get_stream(STREAM).await.expect("stream");
    let last = stream.cached_info().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let message = stream.get_raw_message(seq).await.expect("message");
        let id = message
            .headers
            .get(HEADER_ID)
            .expect("event id header")
            .as_str()
            .to_owned();
        out.push((message.subject.to_string(), id));
    }
    out
}

async fn messages(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream(STREAM).await.expect("stream");
    stream.info().await.expect("info").state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_outbox_publish_each_row_once_in_order_per_aggregate() {
    let nats = NatsServer::start().await;
    let js = short_window_stream(&nats).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = outbox_db(&dir).await;
    db::migrate(&writer, outbox::MIGRATIONS)
        .await
        .expect("migrate");
    let (stop, stopped) = shutdown::channel();
    let mut signals = Vec::new();
    for _ in 0..2 {
        let signal = OutboxSignal::new();
        signals.push(signal.clone());
        let conn = outbox_db(&dir).await;
        tokio::spawn(relay::run(conn, js.clone(), signal, stopped.clone()));
    }

    // Rows keep coming while both relays run; each commit wakes the relay of the instance
    // that made it, as in a service.
    let total = AGGREGATES * PER_AGGREGATE;
    for seq in 0..total {
        outbox::enqueue(&writer, &event(seq, seq % AGGREGATES))
            .await
            .expect("enqueue");
        signals[seq % 2].wake();
        if seq.is_multiple_of(20) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    eventually("the outbox drains", async || {
        outbox::pending(&writer).await.expect("pending") == 0
    })
    .await;
    // A second publisher's late copies would land now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.fire();

    let stored = stored(&js).await;
    assert_eq!(stored.len(), total, "each row once");
    let mut last: HashMap<&str, &str> = HashMap::new();
    for (subject, id) in &stored {
        if let Some(before) = last.insert(subject, id) {
            assert!(
                before < id.as_str(),
                "{subject}: {id} after {before}, out of commit order"
            );
        }
    }
}

#[tokio::test]
async fn a_relay_paused_past_its_lease_publishes_nothing_more() {
    let nats = NatsServer::start().await;
    let js = short_window_stream(&nats).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (a_db, b_db) = (outbox_db(&dir).await, outbox_db(&dir).await);
    db::migrate(&a_db, outbox::MIGRATIONS)
        .await
        .expect("migrate");
    let lease = Duration::from_millis(300);
    let (mut a, mut b) = (RelayLease::new(lease), RelayLease::new(lease));

    assert!(
        a.acquire(&a_db).await.expect("acquire"),
        "a takes the lease"
    );
    outbox::enqueue(&a_db, &event(0, 0)).await.expect("enqueue");
    assert_eq!(
        relay::publish_held(&b_db, &js, &mut b)
            .await
            .expect("publish"),
        None,
        "b stands by while a holds the lease"
    );
    assert_eq!(messages(&js).await, 0);

    // a is paused past its lease; b takes over and publishes.
    tokio::time::sleep(lease + Duration::from_millis(50)).await;
    assert!(!a.holds(), "a's own clock tells it the lease may be gone");
    assert_eq!(
        relay::publish_held(&b_db, &js, &mut b)
            .await
            .expect("publish"),
        Some(1)
    );
    outbox::enqueue(&a_db, &event(1, 0)).await.expect("enqueue");
    assert_eq!(
        relay::publish_held(&a_db, &js, &mut a)
            .await
            .expect("publish"),
        None,
        "a resumed and found the lease taken"
    );
    assert_eq!(messages(&js).await, 1, "nothing from a");
    b.release(&b_db).await;
    assert_eq!(
        relay::publish_held(&a_db, &js, &mut a)
            .await
            .expect("publish"),
        Some(1),
        "a released lease is taken at once"
    );
}
