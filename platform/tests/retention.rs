//! Retention: streams carry the configured max age and size (read back from a real
//! nats-server, also when a stream already exists), and the pruner deletes only rows past
//! their window, in batches, on SQLite and (when `POLYSHOP_TEST_POSTGRES_URL` is set)
//! PostgreSQL.

use std::time::Duration;

use async_nats::jetstream::stream;
use polyshop_platform::{
    config::EventSettings,
    db,
    events::{
        EventBus, outbox,
        streams::{self, Limits, Replicas},
    },
    now_millis,
    retention::{Pruned, Pruner, Rule},
    shutdown,
    testing::{self, NatsServer, eventually},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

const DAY: Duration = Duration::from_secs(86_400);

/// The limits every stream has, by name.
async fn limits_of(js: &async_nats::jetstream::Context) -> Vec<(String, Duration, i64, Duration)> {
    let mut found = Vec::new();
    let names = streams::contexts()
        .map(streams::stream_name)
        .chain([streams::DLQ_STREAM.to_owned()]);
    for name in names {
        let mut stream = js.get_stream(&name).await.expect("stream exists");
        let config = stream.info().await.expect("stream info").config.clone();
        found.push((
            name,
            config.max_age,
            config.max_bytes,
            config.duplicate_window,
        ));
    }
    found
}

#[tokio::test]
async fn streams_are_created_with_the_configured_max_age_and_max_bytes() {
    let nats = NatsServer::start().await;
    let js = testing::jetstream(&nats).await;
    let limits = Limits {
        max_age: 2 * DAY,
        dlq_max_age: 9 * DAY,
        max_bytes: 64 << 20,
    };
    streams::ensure_limited(&js, Replicas::Keep(1), limits)
        .await
        .expect("streams");

    // `polyshop up`, which knows no settings, leaves them as they are.
    streams::ensure_replicated(&js, 1).await.expect("up");
    streams::ensure(&js, 1).await.expect("ensure");

    let found = limits_of(&js).await;
    assert!(found.len() > 1, "context streams and the DLQ: {found:?}");
    for (name, max_age, max_bytes, duplicate_window) in found {
        let age = if name == streams::DLQ_STREAM {
            9 * DAY
        } else {
            2 * DAY
        };
        assert_eq!(
            (max_age, max_bytes, duplicate_window),
            (age, 64 << 20, streams::DUPLICATE_WINDOW),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_event_bus_changes_the_limits_of_existing_streams_to_the_settings() {
    let nats = NatsServer::start().await;
    let js = testing::jetstream(&nats).await;
    // As a deployment from before retention left them: no age or size limit.
    let names = streams::contexts()
        .map(|c| (streams::stream_name(c), format!("polyshop.{c}.>")))
        .chain([(
            streams::DLQ_STREAM.to_owned(),
            format!("{}.>", streams::DLQ_PREFIX),
        )]);
    for (name, subject) in names {
        js.create_stream(stream::Config {
            name,
            subjects: vec![subject],
            duplicate_window: streams::DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .expect("unlimited stream");
    }
    let before = limits_of(&js).await;
    assert!(
        before
            .iter()
            .all(|(_, age, bytes, _)| age.is_zero() && *bytes == -1),
        "unlimited: {before:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let conn = sqlite(&dir).await;
    let mut s = testing::settings(dir.path());
    s.nats.url = Some(nats.url());
    s.events.stream_max_age_days = 3;
    s.events.dlq_max_age_days = 40;
    s.events.stream_max_bytes = 32 << 20;
    let (_stop, stopped) = shutdown::channel();
    let _bus = EventBus::start(&s, "retention-test", conn, stopped)
        .await
        .expect("bus");

    eventually("every stream has the configured limits", async || {
        limits_of(&js)
            .await
            .iter()
            .all(|(name, age, bytes, window)| {
                let want = if name == streams::DLQ_STREAM { 40 } else { 3 };
                *age == want * DAY && *bytes == 32 << 20 && *window == streams::DUPLICATE_WINDOW
            })
    })
    .await;
}

/// A table of idempotency keys as a service would have, next to the platform's tables.
const KEYS: db::Migration = db::Migration {
    version: 1,
    name: "keys",
    sql: "CREATE TABLE request_keys (
            idempotency_key TEXT PRIMARY KEY,
            created_at BIGINT NOT NULL);
          CREATE INDEX request_keys_by_age ON request_keys (created_at)",
};

async fn sqlite(dir: &tempfile::TempDir) -> DatabaseConnection {
    let conn = db::connect(dir.path(), "retention-test", &Default::default())
        .await
        .expect("db");
    db::migrate(&conn, &[outbox::MIGRATIONS, &[KEYS]].concat())
        .await
        .expect("migrate");
    conn
}

async fn postgres(test: &str) -> Option<DatabaseConnection> {
    let url = testing::postgres_database(test).await?;
    let conn = db::connect_url(&url, "retention-test")
        .await
        .expect("connect");
    db::migrate(&conn, &[outbox::MIGRATIONS, &[KEYS]].concat())
        .await
        .expect("migrate");
    Some(conn)
}

async fn exec(conn: &DatabaseConnection, sql: &str) {
    conn.execute_unprepared(sql).await.expect(sql);
}

async fn ids(conn: &DatabaseConnection, sql: &str) -> Vec<String> {
    let rows = conn
        .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect(sql);
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("text"))
        .collect()
}

/// `n` rows named `<prefix>-<i>`, `age` old, in `table`: inbox rows split over two consumers.
async fn insert(conn: &DatabaseConnection, table: &str, prefix: &str, n: usize, age: Duration) {
    let at = now_millis() - i64::try_from(age.as_millis()).expect("age");
    for chunk in (0..n).collect::<Vec<_>>().chunks(400) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| match table {
                "event_inbox" => format!("('consumer-{}', '{prefix}-{i}', {at})", i % 2),
                _ => format!("('{prefix}-{i}', {at})"),
            })
            .collect();
        exec(
            conn,
            &format!("INSERT INTO {table} VALUES {}", rows.join(", ")),
        )
        .await;
    }
}

/// Old rows (past the window by an hour) and young ones (an hour inside it) in the inbox and
/// a key table; a pruner with batches of 1,000 deletes exactly the old ones, in three
/// statements for 2,500 rows.
async fn prunes_only_rows_past_the_window_in_batches(conn: DatabaseConnection) {
    let events = EventSettings::default();
    let (inbox, keys) = (events.inbox_window(), events.idempotency_window());
    let hour = Duration::from_secs(3600);
    insert(&conn, "event_inbox", "old", 2500, inbox + hour).await;
    insert(&conn, "event_inbox", "young", 10, inbox - hour).await;
    insert(&conn, "request_keys", "old", 1200, keys + hour).await;
    insert(&conn, "request_keys", "young", 5, keys - hour).await;

    let pruner = Pruner::new(conn.clone())
        .rule(Rule::inbox(&events))
        .rule(Rule::idempotency_keys(
            "request_keys",
            "idempotency_key",
            "created_at",
            &events,
        ))
        .batch(1000);
    let report = pruner.prune_once().await.expect("prune");
    assert_eq!(
        report,
        [
            Pruned {
                table: "event_inbox",
                rows: 2500,
                batches: 3
            },
            Pruned {
                table: "request_keys",
                rows: 1200,
                batches: 2
            },
        ]
    );
    let mut left = ids(&conn, "SELECT event_id FROM event_inbox").await;
    left.sort();
    let young: Vec<String> = {
        let mut y: Vec<String> = (0..10).map(|i| format!("young-{i}")).collect();
        y.sort();
        y
    };
    assert_eq!(left, young, "only the young inbox rows are left");
    let mut left = ids(&conn, "SELECT idempotency_key FROM request_keys").await;
    left.sort();
    assert_eq!(
        left,
        (0..5).map(|i| format!("young-{i}")).collect::<Vec<_>>(),
        "only the young keys are left"
    );

    let again = pruner.prune_once().await.expect("prune again");
    assert!(
        again.iter().all(|p| p.rows == 0 && p.batches == 1),
        "nothing more to prune: {again:?}"
    );
}

#[tokio::test]
async fn the_pruner_deletes_only_rows_past_their_window_in_batches_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    prunes_only_rows_past_the_window_in_batches(sqlite(&dir).await).await;
}

#[tokio::test]
async fn the_pruner_deletes_only_rows_past_their_window_in_batches_on_postgres() {
    let Some(conn) =
        postgres("the_pruner_deletes_only_rows_past_their_window_in_batches_on_postgres").await
    else {
        return;
    };
    prunes_only_rows_past_the_window_in_batches(conn).await;
}

#[tokio::test]
async fn the_event_bus_prunes_its_inbox_in_the_background() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = sqlite(&dir).await;
    let events = EventSettings::default();
    insert(&conn, "event_inbox", "old", 3, events.inbox_window() + DAY).await;
    insert(&conn, "event_inbox", "young", 2, DAY).await;
    let mut s = testing::settings(dir.path());
    s.nats.url = Some(nats.url());
    let (_stop, stopped) = shutdown::channel();
    let _bus = EventBus::start(&s, "retention-test", conn.clone(), stopped)
        .await
        .expect("bus");

    eventually("the old inbox rows are pruned at start", async || {
        ids(&conn, "SELECT event_id FROM event_inbox").await.len() == 2
    })
    .await;
    let mut left = ids(&conn, "SELECT event_id FROM event_inbox").await;
    left.sort();
    assert_eq!(left, ["young-0", "young-1"]);
}
