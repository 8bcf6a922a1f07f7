//! The gauges operators alert on, against a real nats-server, each made to move: the outbox
//! backlog and its oldest row's age while NATS is away, a durable consumer's pending messages
//! while it is stopped, and the dead letters per original stream. One test, since the dead
//! letter gauge of every bus in this process shares its series.

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use futures::future::BoxFuture;
use polyshop::user::v1::UserDeleted;
use polyshop_platform::{
    db,
    events::{
        self, EventBus, ReceivedEvent,
        consumer::{Handler, HandlerError},
        dlq, outbox,
        streams::DLQ_STREAM,
    },
    metrics, shutdown,
    testing::{self, NatsServer, eventually},
};
use sea_orm::{DatabaseConnection, DatabaseTransaction};

const SERVICE: &str = "gauges-test";
const CONSUMER: &str = "gauges-test-consumer";

/// Counts calls; dead-letters user ids starting with "poison".
struct Counter(AtomicU32);

impl Handler for Counter {
    fn handle<'a>(
        &'a self,
        _txn: &'a DatabaseTransaction,
        event: &'a ReceivedEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            self.0.fetch_add(1, Ordering::SeqCst);
            let e: UserDeleted = event
                .decode()
                .map_err(|e| HandlerError::Poison(e.to_string()))?;
            if e.user_id.starts_with("poison") {
                return Err(HandlerError::Poison("poison".into()));
            }
            Ok(())
        })
    }
}

/// The value of series `name{labels}` in this process's exposition, if it is there.
fn gauge(name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    metrics::render().lines().find_map(|l| {
        l.strip_prefix(&prefix)
            .map(|v| v.parse().expect("a number"))
    })
}

async fn gauge_becomes(name: &str, labels: &str, want: f64) {
    eventually(&format!("{name}{{{labels}}} = {want}"), async || {
        gauge(name, labels) == Some(want)
    })
    .await;
}

async fn publish(conn: &DatabaseConnection, bus: &EventBus, user_id: &str) {
    let event = events::event(&UserDeleted {
        user_id: user_id.into(),
        occur_time: None,
    });
    outbox::enqueue(conn, &event).await.expect("enqueue");
    bus.signal.wake();
}

#[tokio::test]
async fn outbox_consumer_and_dead_letter_gauges_follow_what_they_count() {
    let mut nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = db::connect(dir.path(), "gauges-test", &Default::default())
        .await
        .expect("db");
    db::migrate(&conn, outbox::MIGRATIONS)
        .await
        .expect("migrate");
    let mut s = testing::settings(dir.path());
    s.nats.url = Some(nats.url());
    s.events.gauge_interval_ms = 100;
    let (_stop, stopped) = shutdown::channel();
    let bus = EventBus::start(&s, SERVICE, conn.clone(), stopped.clone())
        .await
        .expect("bus");
    let service = format!("service=\"{SERVICE}\"");
    gauge_becomes("polyshop_outbox_backlog", &service, 0.0).await;
    eventually("the streams exist", async || {
        bus.js.get_stream(DLQ_STREAM).await.is_ok()
    })
    .await;

    // Outbox: rows wait while NATS is away, and age.
    nats.stop();
    for i in 0..3 {
        publish(&conn, &bus, &format!("offline-{i}")).await;
    }
    gauge_becomes("polyshop_outbox_backlog", &service, 3.0).await;
    eventually("the oldest row ages", async || {
        gauge("polyshop_outbox_oldest_age_seconds", &service).is_some_and(|age| age > 0.0)
    })
    .await;
    nats.restart().await;
    gauge_becomes("polyshop_outbox_backlog", &service, 0.0).await;
    gauge_becomes("polyshop_outbox_oldest_age_seconds", &service, 0.0).await;

    // Consumer: it takes what is there; stopped, new messages wait for it.
    let consumer = format!("stream=\"POLYSHOP_USER\",consumer=\"{CONSUMER}\"");
    let counter = Arc::new(Counter(AtomicU32::new(0)));
    let spec = s
        .events
        .consumer(CONSUMER, "POLYSHOP_USER", &["polyshop.user.deleted"]);
    let (stop_consumer, consumer_stopped) = shutdown::channel();
    bus.spawn_consumer(
        conn.clone(),
        spec.clone(),
        counter.clone(),
        consumer_stopped,
    );
    eventually("the three events consumed", async || {
        counter.0.load(Ordering::SeqCst) >= 3
    })
    .await;
    gauge_becomes("polyshop_consumer_pending_messages", &consumer, 0.0).await;
    stop_consumer.fire();
    // Its open pull lapses at the broker once nobody listens on its inbox.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for i in 0..4 {
        publish(&conn, &bus, &format!("while-stopped-{i}")).await;
    }
    gauge_becomes("polyshop_consumer_pending_messages", &consumer, 4.0).await;
    let (_stop_again, consumer_stopped) = shutdown::channel();
    bus.spawn_consumer(conn.clone(), spec, counter.clone(), consumer_stopped);
    gauge_becomes("polyshop_consumer_pending_messages", &consumer, 0.0).await;

    // Dead letters: counted under the stream the event was first published on.
    let user_stream = "stream=\"POLYSHOP_USER\"";
    gauge_becomes("polyshop_dead_letters", user_stream, 0.0).await;
    publish(&conn, &bus, "poison-1").await;
    gauge_becomes("polyshop_dead_letters", user_stream, 1.0).await;
    assert_eq!(
        gauge("polyshop_dead_letters", "stream=\"POLYSHOP_ORDER\""),
        Some(0.0),
        "every context's stream is listed"
    );
    let letters = dlq::list(&bus.js).await.expect("list");
    assert_eq!(letters.len(), 1);
    let dlq_stream = bus.js.get_stream(DLQ_STREAM).await.expect("dlq");
    dlq_stream
        .delete_message(letters[0].sequence)
        .await
        .expect("delete");
    gauge_becomes("polyshop_dead_letters", user_stream, 0.0).await;
}
