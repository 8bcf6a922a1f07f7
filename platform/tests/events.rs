//! The event pipeline against a real nats-server: outbox → relay → stream → consumer, with
//! dedupe, exactly-once effects, NATS outages, dead letters and redrive.

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use futures::future::BoxFuture;
use polyshop::user::v1::UserDeleted;
use polyshop_platform::{
    config::Settings,
    db,
    events::{
        self, EventBus, ReceivedEvent,
        consumer::{self, Handler, HandlerError},
        dlq, outbox,
    },
    shutdown,
    testing::{self, NatsServer, eventually},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement};

const APPLIED: db::Migration = db::Migration {
    version: 1,
    name: "applied",
    sql: "CREATE TABLE applied (event_id TEXT NOT NULL, user_id TEXT NOT NULL)",
};

/// Records each applied event; fails for user ids starting with "poison".
struct Recorder {
    calls: AtomicU32,
}

impl Handler for Recorder {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a ReceivedEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let e: UserDeleted = event
                .decode()
                .map_err(|e| HandlerError::Poison(e.to_string()))?;
            if e.user_id.starts_with("poison") {
                return Err(HandlerError::Retry("this event always fails".into()));
            }
            txn.execute_raw(Statement::from_sql_and_values(
                txn.get_database_backend(),
                "INSERT INTO applied (event_id, user_id) VALUES (?, ?)",
                [event.id.clone().into(), e.user_id.into()],
            ))
            .await
            .map_err(|e| HandlerError::Retry(e.to_string()))?;
            Ok(())
        })
    }
}

async fn database(dir: &tempfile::TempDir) -> DatabaseConnection {
    let conn = db::connect(dir.path(), "events-test", &Default::default())
        .await
        .expect("db");
    db::migrate(&conn, &[outbox::MIGRATIONS, &[APPLIED]].concat())
        .await
        .expect("migrate");
    conn
}

async fn count(conn: &DatabaseConnection, sql: &str) -> i64 {
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("row");
    row.try_get_by_index::<i64>(0).expect("count")
}

async fn publish(conn: &DatabaseConnection, bus: &EventBus, user_id: &str) -> String {
    let event = events::event(&UserDeleted {
        user_id: user_id.into(),
        occur_time: None,
    });
    outbox::enqueue(conn, &event).await.expect("enqueue");
    bus.signal.wake();
    event.id
}

fn settings(dir: &tempfile::TempDir, nats: &NatsServer) -> Settings {
    let mut s = testing::settings(dir.path());
    s.nats.url = Some(nats.url());
    s.events.max_deliver = 3;
    s.events.ack_wait_secs = 2;
    s
}

/// One test's own nats-server, database and event bus.
struct Rig {
    nats: NatsServer,
    conn: DatabaseConnection,
    s: Settings,
    bus: EventBus,
    stopped: shutdown::Shutdown,
    _stop: shutdown::Trigger,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start(service: &str) -> Self {
        let nats = NatsServer::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = database(&dir).await;
        let s = settings(&dir, &nats);
        let (stop, stopped) = shutdown::channel();
        let bus = EventBus::start(&s, service, conn.clone(), stopped.clone())
            .await
            .expect("bus");
        Self {
            nats,
            conn,
            s,
            bus,
            stopped,
            _stop: stop,
            _dir: dir,
        }
    }

    /// A [`Recorder`] consuming `polyshop.user.deleted` as the durable consumer `name`.
    fn consume(&self, name: &str) -> Arc<Recorder> {
        let recorder = Arc::new(Recorder {
            calls: AtomicU32::new(0),
        });
        let spec = self
            .s
            .events
            .consumer(name, "POLYSHOP_USER", &["polyshop.user.deleted"]);
        self.bus.spawn_consumer(
            self.conn.clone(),
            spec,
            recorder.clone(),
            self.stopped.clone(),
        );
        recorder
    }
}

#[tokio::test]
async fn events_survive_a_nats_outage_and_are_applied_exactly_once() {
    let mut rig = Rig::start("events-test").await;
    let recorder = rig.consume("events-test-recorder");
    let (conn, bus) = (rig.conn.clone(), &rig.bus);

    publish(&conn, bus, "u1").await;
    eventually("first event applied", async || {
        count(&conn, "SELECT COUNT(*) FROM applied").await == 1
    })
    .await;

    // NATS goes away: events keep committing into the outbox.
    rig.nats.stop();
    for i in 0..5 {
        publish(&conn, bus, &format!("offline-{i}")).await;
    }
    assert_eq!(outbox::pending(&conn).await.expect("pending"), 5);
    rig.nats.restart().await;
    eventually("outbox drained", async || {
        outbox::pending(&conn).await.expect("pending") == 0
    })
    .await;
    eventually("all applied", async || {
        count(&conn, "SELECT COUNT(*) FROM applied").await == 6
    })
    .await;
    assert_eq!(
        count(&conn, "SELECT COUNT(DISTINCT event_id) FROM applied").await,
        6,
        "applied once each"
    );

    // A redelivered event (same id) is acknowledged without running the handler again.
    let again = ReceivedEvent {
        id: {
            let row = conn
                .query_one_raw(Statement::from_string(
                    conn.get_database_backend(),
                    "SELECT event_id FROM applied LIMIT 1",
                ))
                .await
                .expect("q")
                .expect("row");
            row.try_get_by_index::<String>(0).expect("id")
        },
        subject: "polyshop.user.deleted".into(),
        type_name: "polyshop.user.v1.UserDeleted".into(),
        payload: prost::Message::encode_to_vec(&UserDeleted {
            user_id: "u1".into(),
            occur_time: None,
        })
        .into(),
        delivered: 2,
    };
    let before = recorder.calls.load(Ordering::SeqCst);
    consumer::apply(&conn, "events-test-recorder", recorder.as_ref(), &again)
        .await
        .expect("no-op");
    assert_eq!(
        recorder.calls.load(Ordering::SeqCst),
        before,
        "inbox skipped the handler"
    );
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM applied").await, 6);
}

#[tokio::test]
async fn the_same_event_id_published_twice_is_stored_once() {
    let rig = Rig::start("dedupe-test").await;
    let (conn, bus) = (&rig.conn, &rig.bus);
    let event = events::event(&UserDeleted {
        user_id: "dup".into(),
        occur_time: None,
    });
    // As if the relay lost the first ack and published the row again.
    outbox::enqueue(conn, &event).await.expect("enqueue");
    bus.signal.wake();
    eventually("published", async || {
        outbox::pending(conn).await.expect("pending") == 0
    })
    .await;
    outbox::enqueue(conn, &event).await.expect("enqueue again");
    bus.signal.wake();
    eventually("published again", async || {
        outbox::pending(conn).await.expect("pending") == 0
    })
    .await;
    let mut stream = bus.js.get_stream("POLYSHOP_USER").await.expect("stream");
    assert_eq!(
        stream.info().await.expect("info").state.messages,
        1,
        "the duplicate window dropped the copy"
    );
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_the_consumer_keeps_flowing_and_redrive_replays_it() {
    let rig = Rig::start("dlq-test").await;
    rig.consume("dlq-test-recorder");
    let (conn, bus) = (&rig.conn, &rig.bus);

    let poison = publish(conn, bus, "poison-1").await;
    publish(conn, bus, "fine-after-poison").await;
    eventually(
        "the good event after the poison one is applied",
        async || count(conn, "SELECT COUNT(*) FROM applied").await == 1,
    )
    .await;
    let mut letters = Vec::new();
    eventually("poison event in the DLQ", async || {
        letters = dlq::list(&bus.js).await.unwrap_or_default();
        !letters.is_empty()
    })
    .await;
    assert_eq!(letters[0].event_id, poison);
    assert_eq!(letters[0].subject, "polyshop.user.deleted");
    assert_eq!(letters[0].consumer, "dlq-test-recorder");
    assert!(
        letters[0].reason.contains("always fails"),
        "{}",
        letters[0].reason
    );

    assert_eq!(dlq::redrive(&bus.js, None).await.expect("redrive"), 1);
    assert!(
        dlq::list(&bus.js).await.expect("list").is_empty(),
        "redriven letters leave the DLQ"
    );
    // It fails again and comes back: the replay really went through the consumer.
    eventually("poison event dead-lettered again", async || {
        dlq::list(&bus.js).await.unwrap_or_default().len() == 1
    })
    .await;
}

#[tokio::test]
async fn a_poison_event_among_others_fetched_together_spoils_none_of_them() {
    let rig = Rig::start("batch-test").await;
    let (conn, bus) = (&rig.conn, &rig.bus);
    // Everything is on the stream before the consumer exists, so its first fetch holds all.
    for i in 0..10 {
        publish(conn, bus, &format!("good-{i}")).await;
        if i == 4 {
            publish(conn, bus, "poison-in-the-middle").await;
        }
    }
    eventually("outbox drained", async || {
        outbox::pending(conn).await.expect("pending") == 0
    })
    .await;
    rig.consume("batch-test-recorder");

    eventually("every good event applied", async || {
        count(conn, "SELECT COUNT(*) FROM applied").await == 10
    })
    .await;
    eventually("the poison event dead-lettered", async || {
        dlq::list(&bus.js).await.unwrap_or_default().len() == 1
    })
    .await;
    assert_eq!(
        count(conn, "SELECT COUNT(DISTINCT event_id) FROM applied").await,
        10,
        "each good event applied once, none lost with the failed batch"
    );
    assert_eq!(
        count(
            conn,
            "SELECT COUNT(*) FROM event_inbox WHERE consumer = 'batch-test-recorder'"
        )
        .await,
        10
    );
}
