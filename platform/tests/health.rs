//! The health model against a real nats-server and a real database: two processes served by
//! the same bootstrap as every service, one whose context needs NATS (notification) and one
//! whose does not (order), with the per-context table the services use. Stopping NATS fails
//! readiness only where NATS is critical; closing a database fails readiness of its process;
//! liveness holds throughout, over HTTP (`/livez`, `/readyz`, `/health`) and over gRPC health
//! (`liveness`, `readiness`, `""` and the served service name).

use std::{net::SocketAddr, time::Duration};

use polyshop_platform::{
    db, events,
    server::{
        self, ServerSpec,
        health::{self, Health},
    },
    shutdown,
    testing::{self, NatsServer, TestTokens, eventually_some},
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Readiness is re-evaluated every 2 s and NATS reconnects with backoff: allow for both.
const WITHIN: Duration = Duration::from_secs(20);

/// `GET path` over HTTP/1.1: status code and JSON body.
async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (
        code,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

async fn grpc_status(addr: SocketAddr, name: &str) -> ServingStatus {
    HealthClient::new(testing::channel(addr))
        .check(HealthCheckRequest {
            service: name.to_owned(),
        })
        .await
        .map(|r| r.into_inner().status())
        .unwrap_or(ServingStatus::Unknown)
}

/// One process as the bootstrap serves it.
struct Process {
    name: &'static str,
    grpc_name: &'static str,
    addr: SocketAddr,
    db: sea_orm::DatabaseConnection,
    _stop: shutdown::Trigger,
}

async fn start(
    name: &'static str,
    grpc_name: &'static str,
    nats: &NatsServer,
    dir: &std::path::Path,
) -> Process {
    std::fs::create_dir_all(dir).expect("data dir");
    let settings = testing::settings(dir);
    let db = db::connect_url(
        &format!(
            "sqlite://{}?mode=rwc",
            dir.join(format!("{name}.db")).display()
        ),
        name,
    )
    .await
    .expect("database");
    let client = events::connect(&nats.url(), name).await.expect("nats");
    let auth = TestTokens::new(&settings).authenticator(&format!("polyshop-{name}"));
    let (listener, addr) = testing::listener().await;
    let (stop, stopped) = shutdown::channel();
    let spec = ServerSpec {
        name,
        grpc_services: vec![grpc_name],
        routes: tonic::service::Routes::default(),
        db: db.clone(),
        health: Health::new(name, dir).nats(client, health::nats_critical(name)),
        auth,
        grace: Duration::from_secs(1),
    };
    tokio::spawn(server::serve(listener, spec, stopped.wait()));
    let process = Process {
        name,
        grpc_name,
        addr,
        db,
        _stop: stop,
    };
    process.until_ready(true, "it starts ready").await;
    process
}

impl Process {
    /// Waits until `/readyz` and the gRPC readiness names all say `ready`; checks liveness
    /// holds meanwhile.
    async fn until_ready(&self, ready: bool, what: &str) {
        let want = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        let what = format!("{}: {what}", self.name);
        eventually_some(&what, WITHIN, async || {
            let (code, _) = get(self.addr, "/readyz").await;
            if (code == 200) != ready {
                return None;
            }
            for name in ["", health::READINESS, self.grpc_name] {
                if grpc_status(self.addr, name).await != want {
                    return None;
                }
            }
            Some(())
        })
        .await;
        self.assert_live().await;
    }

    async fn assert_live(&self) {
        let (code, body) = get(self.addr, "/livez").await;
        assert_eq!(
            (code, body),
            (200, serde_json::json!({ "status": "ok" })),
            "{}: /livez",
            self.name
        );
        assert_eq!(
            grpc_status(self.addr, health::LIVENESS).await,
            ServingStatus::Serving,
            "{}: gRPC liveness",
            self.name
        );
    }

    /// The full check, and its entry named `check`.
    async fn full(&self, check: &str) -> (u16, Value, Value) {
        let (code, body) = get(self.addr, "/health").await;
        let entry = body["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == check))
            .cloned()
            .unwrap_or_else(|| panic!("{}: no {check} in {body}", self.name));
        (code, body, entry)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_gone_fails_readiness_only_where_critical_and_database_gone_fails_it_everywhere() {
    assert!(health::nats_critical("notification"));
    assert!(!health::nats_critical("order"));
    let mut nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let needs = start(
        "notification",
        "polyshop.notification.v1.NotificationService",
        &nats,
        &dir.path().join("notification"),
    )
    .await;
    let spares = start(
        "order",
        "polyshop.order.v1.OrderService",
        &nats,
        &dir.path().join("order"),
    )
    .await;

    // All well: the full check names every dependency, with latency and detail.
    for p in [&needs, &spares] {
        let (code, body, database) = p.full("database").await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["status"], "ready", "{body}");
        assert_eq!(body["service"], p.name);
        assert_eq!(
            (body["live"].clone(), body["ready"].clone()),
            (Value::Bool(true), Value::Bool(true))
        );
        assert_eq!(database["ok"], true, "{database}");
        assert_eq!(database["critical"], true);
        assert!(database["latencyMs"].is_number(), "{database}");
        let (_, _, nats_check) = p.full("nats").await;
        assert_eq!(nats_check["ok"], true, "{nats_check}");
        assert_eq!(nats_check["critical"], p.name == "notification");
        assert!(
            nats_check["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("connected")),
            "{nats_check}"
        );
        let (_, _, disk) = p.full("disk").await;
        assert!(disk["freeBytes"].as_u64().is_some_and(|b| b > 0), "{disk}");
        assert_eq!(disk["critical"], false);
        let (_, _, memory) = p.full("memory").await;
        assert!(
            memory["rssBytes"].as_u64().is_some_and(|b| b > 0),
            "{memory}"
        );
    }

    // NATS gone: notification goes unready, order stays ready (degraded); both stay live.
    nats.stop();
    needs.until_ready(false, "unready without NATS").await;
    let (code, body) = get(needs.addr, "/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["failing"][0]["name"], "nats", "{body}");
    let (_, body, nats_check) = spares.full("nats").await;
    assert_eq!(nats_check["ok"], false, "{nats_check}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["ready"], true, "{body}");
    spares.until_ready(true, "still ready without NATS").await;
    let (code, body, _) = needs.full("nats").await;
    assert_eq!(
        (code, body["status"].clone()),
        (503, Value::from("not ready")),
        "{body}"
    );

    // NATS back: ready again.
    nats.restart().await;
    needs.until_ready(true, "ready again with NATS back").await;
    spares.until_ready(true, "ready with NATS back").await;

    // Database gone (its pool closed): readiness fails, liveness holds.
    spares.db.clone().close().await.expect("close");
    spares
        .until_ready(false, "unready without its database")
        .await;
    let (code, body) = get(spares.addr, "/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(body["failing"][0]["name"], "database", "{body}");
    let (code, body, database) = spares.full("database").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(database["ok"], false, "{database}");
    // The other process, its database intact, is unaffected.
    needs
        .until_ready(true, "unaffected by another's database")
        .await;
    // /metrics still answers beside the probes.
    let (code, _) = get(spares.addr, "/metrics").await;
    assert_eq!(code, 200);
}
