//! Test helpers shared by the service test suites (feature `test-util`, never a normal
//! dependency): settings on a temp data dir, tokens minted with a test key, servers on
//! 127.0.0.1:0, a fresh PostgreSQL database when one is configured, a nats-server per test
//! with helpers to read what was published on it, and waits on conditions instead of sleeps.

use std::{io::Write, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use async_nats::jetstream::{self, message::StreamMessage};
use futures::TryStreamExt;
use sea_orm::ConnectionTrait;
use tokio::{net::TcpListener, time::Instant};

use crate::{
    auth::{Authenticator, TokenIssuer, UserTokenVerifier, keys, service_tokens},
    config::Settings,
};

/// Environment variable naming a PostgreSQL server tests may create databases on.
pub const POSTGRES_ENV: &str = "POLYSHOP_TEST_POSTGRES_URL";

/// Settings rooted at `data_dir`, quiet logs, every service on an ephemeral port.
pub fn settings(data_dir: &Path) -> Settings {
    let mut s = Settings {
        data_dir: data_dir.to_owned(),
        log: "warn".into(),
        ..Settings::default()
    };
    s.shutdown_grace_secs = 2;
    s
}

/// Writes a line to the real stderr, past the test harness's capture, so the run shows it.
pub fn announce(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// Mints user tokens the way the user service does, with a key under the data dir.
#[derive(Debug, Clone)]
pub struct TestTokens {
    issuer: Arc<TokenIssuer>,
    settings: Settings,
}

impl TestTokens {
    /// A token issuer for `settings` (key generated under its data dir).
    ///
    /// # Panics
    /// If the key cannot be created.
    pub fn new(settings: &Settings) -> Self {
        let key = keys::load_or_generate(&settings.keys_dir().join("test-user-token.pem"))
            .expect("test signing key");
        let issuer = TokenIssuer::new(
            key,
            settings.auth.issuer.clone(),
            settings.auth.audience.clone(),
            Duration::from_secs(600),
        );
        Self {
            issuer: Arc::new(issuer),
            settings: settings.clone(),
        }
    }

    /// A customer token for `user_id`.
    pub fn customer(&self, user_id: &str) -> String {
        self.issuer
            .issue(user_id, vec!["customer".into()])
            .expect("sign")
            .0
    }

    /// An admin token for `user_id`.
    pub fn admin(&self, user_id: &str) -> String {
        self.issuer
            .issue(user_id, vec!["customer".into(), "admin".into()])
            .expect("sign")
            .0
    }

    /// A service token from `caller` (e.g. `polyshop-order`) to `callee`.
    pub fn service(&self, caller: &str, callee: &str) -> String {
        service_tokens(&self.settings, caller)
            .expect("service key")
            .token_for(callee)
            .expect("sign")
    }

    /// The authenticator service `name` would run with, trusting this issuer.
    pub fn authenticator(&self, name: &str) -> Arc<Authenticator> {
        let verifier = UserTokenVerifier::with_keys(
            self.settings.auth.issuer.clone(),
            self.settings.auth.audience.clone(),
            &[self.issuer.jwk()],
        );
        Arc::new(Authenticator::new(
            Arc::new(verifier),
            Arc::new(service_tokens(&self.settings, name).expect("service key")),
        ))
    }
}

/// A listener on 127.0.0.1:0 and its address.
///
/// # Panics
/// If no port can be bound.
pub async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// A tonic channel to `addr` (over TLS with the process's identity when it has one:
/// [`crate::tls`]).
///
/// # Panics
/// If the address is not a valid URI.
pub fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    crate::tls::endpoint(&format!("http://{addr}"))
        .expect("uri")
        .connect_lazy()
}

/// Adds `authorization: Bearer <token>` to a request.
pub fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

/// Whether a client reads `code` as "the server failed" (what the edge answers with a 5xx).
pub fn is_server_error(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Unavailable
            | Code::Internal
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::DataLoss
    )
}

/// A fresh, empty PostgreSQL database URL when `POLYSHOP_TEST_POSTGRES_URL` is set; `None`
/// otherwise, after saying so on the run's output.
///
/// # Panics
/// If the variable is set but the server refuses to create a database.
pub async fn postgres_database(test: &str) -> Option<String> {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        announce(&format!(
            "{test}: PostgreSQL backend NOT covered ({POSTGRES_ENV} is not set; .ci/run sets it when 127.0.0.1:5432 answers)"
        ));
        return None;
    };
    let admin = crate::db::connect_url(&base, "test-admin")
        .await
        .expect("connect to PostgreSQL");
    drop_stale_databases(&admin).await;
    let name = format!("polyshop_test_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("URL has a database path");
    announce(&format!(
        "{test}: PostgreSQL backend covered (database {name})"
    ));
    Some(format!("{prefix}/{name}"))
}

/// Drops `polyshop_test_*` databases more than an hour old (their names carry a UUIDv7, whose
/// first 48 bits are a millisecond timestamp), so test runs do not pile databases up.
async fn drop_stale_databases(admin: &sea_orm::DatabaseConnection) {
    let Ok(rows) = admin
        .query_all_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            "SELECT datname FROM pg_database WHERE datname LIKE 'polyshop_test_%'",
        ))
        .await
    else {
        return;
    };
    let hour_ago = crate::now_millis() - 3_600_000;
    for row in rows {
        let Ok(name) = row.try_get_by_index::<String>(0) else {
            continue;
        };
        let created = name
            .strip_prefix("polyshop_test_")
            .and_then(|hex| hex.get(..12))
            .and_then(|ms| i64::from_str_radix(ms, 16).ok());
        if created.is_some_and(|ms| ms < hour_ago) {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// A nats-server child with JetStream on a free port, for one test. Stops on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<std::process::Child>,
    /// Its port.
    pub port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts `nats-server` (from the project's `.tools/bin`, else PATH) and waits for it.
    ///
    /// # Panics
    /// If it cannot be started: run `just tools`.
    pub async fn start() -> Self {
        // Below the ephemeral range, so a restart finds the port free (see `ports`).
        let port = crate::ports::free_port().expect("a free port");
        let store = tempfile::tempdir().expect("tempdir");
        let mut server = Self {
            child: None,
            port,
            store,
        };
        server.restart().await;
        server
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (its store is kept for [`NatsServer::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store.
    ///
    /// # Panics
    /// If it does not come up within 20 s.
    pub async fn restart(&mut self) {
        self.stop();
        let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/nats-server");
        let program = if tools.exists() {
            tools
        } else {
            "nats-server".into()
        };
        let child = std::process::Command::new(&program)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {} ({e}); run `just tools`", program.display())
            });
        self.child = Some(child);
        let port = self.port;
        eventually_some(
            &format!("nats-server to listen on port {port}"),
            Duration::from_secs(20),
            async || {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
            },
        )
        .await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long [`eventually`] waits for its condition.
pub const EVENTUALLY: Duration = Duration::from_secs(15);

/// The first and the longest pause between two checks: short at first so a condition that
/// holds soon is seen soon, longer later so a slow one is not polled hard.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_millis(200);

/// Waits until `check` holds, checking again and again for up to [`EVENTUALLY`].
///
/// # Panics
/// If it does not hold in time, naming `what` (say what is awaited: "the order is confirmed").
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    eventually_some(what, EVENTUALLY, async || check().await.then_some(())).await;
}

/// Waits until `check` returns a value, for up to `within`, and returns it.
///
/// # Panics
/// If no value comes in time, naming `what`.
pub async fn eventually_some<T>(
    what: &str,
    within: Duration,
    check: impl AsyncFnMut() -> Option<T>,
) -> T {
    poll_until(within, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {within:?} waiting for: {what}"))
}

/// Checks `check` until it returns a value or `within` has passed (a check still running then
/// is dropped); `None` on timeout, for a caller that reports a timeout itself.
pub async fn poll_until<T>(
    within: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    let mut pause = FIRST_PAUSE;
    loop {
        if let Some(value) = tokio::time::timeout_at(deadline, check()).await.ok()? {
            return Some(value);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// A JetStream context on `nats`.
///
/// # Panics
/// If it cannot connect.
pub async fn jetstream(nats: &NatsServer) -> jetstream::Context {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    jetstream::new(client)
}

/// Publishes `event` as a service's outbox relay does (same envelope), and waits for the ack.
///
/// # Panics
/// If the publish fails or no stream captures the subject.
pub async fn publish_event(js: &jetstream::Context, event: crate::events::OutgoingEvent) {
    let message = crate::events::relay::envelope(
        &event.id,
        &event.type_name,
        event.payload.into(),
        event.traceparent.as_deref(),
    );
    js.send_publish(event.subject, message)
        .await
        .expect("publish")
        .await
        .expect("ack");
}

/// How many messages on `subject` the stream that captures it holds (0 while no stream does).
///
/// # Panics
/// If it cannot connect, or the stream's info cannot be read.
pub async fn published(nats: &NatsServer, subject: &str) -> usize {
    count_on(&jetstream(nats).await, subject).await
}

async fn count_on(js: &jetstream::Context, subject: &str) -> usize {
    let Ok(name) = js.stream_by_subject(subject).await else {
        return 0;
    };
    let stream = js.get_stream(name).await.expect("stream");
    let subjects = stream.info_with_subjects(subject).await.expect("info");
    let counts: Vec<(String, usize)> = subjects.try_collect().await.expect("subjects");
    counts.into_iter().map(|(_, n)| n).sum()
}

/// How long [`expect_published`] watches for messages beyond the expected ones.
const NO_MORE_FOR: Duration = Duration::from_millis(300);

/// Waits until `n` messages are on `subject`, then checks that no more arrive soon after.
///
/// # Panics
/// If fewer arrive within [`EVENTUALLY`], or more within 300 ms after.
pub async fn expect_published(nats: &NatsServer, subject: &str, n: usize) {
    let js = jetstream(nats).await;
    eventually(&format!("{n} message(s) on {subject}"), async || {
        count_on(&js, subject).await >= n
    })
    .await;
    // An absence cannot be awaited: give a duplicate publish a moment to show up.
    tokio::time::sleep(NO_MORE_FOR).await;
    assert_eq!(count_on(&js, subject).await, n, "messages on {subject}");
}

/// The last message on `subject`, or `None` while there is none (or no stream captures it).
///
/// # Panics
/// If it cannot connect.
pub async fn last_message(nats: &NatsServer, subject: &str) -> Option<StreamMessage> {
    let js = jetstream(nats).await;
    let name = js.stream_by_subject(subject).await.ok()?;
    let stream = js.get_stream(name).await.ok()?;
    stream.get_last_raw_message_by_subject(subject).await.ok()
}

/// The last message on `subject`, decoded.
///
/// # Panics
/// If there is none, or it does not decode as `M`.
pub async fn last_event<M: prost::Message + Default>(nats: &NatsServer, subject: &str) -> M {
    let message = last_message(nats, subject)
        .await
        .unwrap_or_else(|| panic!("a message on {subject}"));
    M::decode(message.payload).expect("decode")
}
