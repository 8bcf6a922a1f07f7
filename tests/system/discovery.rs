//! With `discovery.mode = "nats"` every service and the edge register in the NATS KV
//! registry; the order saga reaches its participants through it, and the edge balances over
//! a context's instances as they come and go.

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use nix::sys::signal;
use polyshop::order::v1::OrderStatus;
use polyshop_platform::testing::poll_until;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::Command,
};

use crate::{
    crash::place,
    harness::{System, free_port},
    outage::child_pid,
};

#[tokio::test]
async fn services_register_and_the_saga_finds_its_participants_in_the_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = System::environment(dir.path());
    env.insert("POLYSHOP_DISCOVERY_MODE".into(), "nats".into());
    let system = System::up(dir.path(), env).await;

    let mut listed = String::new();
    let all_listed = poll_until(Duration::from_secs(10), async || {
        listed = system.polyshop(&["admin", "services"]).await;
        (listed.lines().count() == 7).then_some(())
    })
    .await;
    assert!(
        all_listed.is_some(),
        "six services and the edge registered: {listed}"
    );
    for service in [
        "user",
        "catalog",
        "inventory",
        "order",
        "payment",
        "notification",
        "gateway",
    ] {
        let line = listed
            .lines()
            .find(|l| l.starts_with(&format!("{service}\t")))
            .unwrap_or_else(|| panic!("{service} registered: {listed}"));
        let url = system.url(&service.to_ascii_uppercase());
        assert!(line.contains(&url), "{line} names {url}");
    }

    let token = system.signup("discovered").await;
    let product = system.first_product().await;
    let order = place(&system, &token, &product.product_id)
        .await
        .expect("order");
    assert_eq!(order.status, OrderStatus::Confirmed as i32, "{order:?}");
    assert!(system.stop().await);
}

/// `GET path` on the edge over HTTP/1.1; the status code.
async fn http_get(edge: &str, path: &str) -> u16 {
    let address = edge.trim_start_matches("http://");
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return 0;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_edge_sends_traffic_to_an_instance_added_at_runtime_and_none_to_a_killed_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = System::environment(dir.path());
    env.insert("POLYSHOP_DISCOVERY_MODE".into(), "nats".into());
    let system = System::up(dir.path(), env).await;
    let edge = system.url("GATEWAY");
    assert_eq!(http_get(&edge, "/v1/products").await, 200);

    // A second catalog on the same data (SQLite is shared by processes on one host), logging
    // each call it serves.
    let port = free_port();
    let mut extra = Command::new(env!("CARGO_BIN_EXE_polyshop"))
        .args(["serve", "catalog"])
        .envs(&system.env)
        .env("POLYSHOP_CATALOG_LISTEN", format!("127.0.0.1:{port}"))
        .env("POLYSHOP_CATALOG_URL", format!("http://127.0.0.1:{port}"))
        .env("POLYSHOP_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start a second catalog");
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    // Logs are JSON lines on stderr; each served call is one with its method.
    let mut lines = BufReader::new(extra.stderr.take().expect("stderr")).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("ListProducts") {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let registered = poll_until(Duration::from_secs(20), async || {
        let listed = system.polyshop(&["admin", "services"]).await;
        listed.contains(&format!("127.0.0.1:{port}")).then_some(())
    })
    .await;
    assert!(registered.is_some(), "the second catalog registered");
    // The edge watches the registry: the new instance gets calls within 2 s.
    let reached = poll_until(Duration::from_secs(2), async || {
        for _ in 0..4 {
            assert_eq!(http_get(&edge, "/v1/products").await, 200);
        }
        (served.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    assert!(
        reached.is_some(),
        "the added instance got edge traffic within 2 s"
    );

    // The first catalog dies without deregistering: the edge's one attempt at it is refused,
    // and retried on the live one (a call that never left may always be retried), so no
    // client sees a failure.
    let first = child_pid(&system, "catalog").expect("the first catalog runs");
    signal::kill(first, signal::Signal::SIGKILL).expect("SIGKILL");
    let before = served.load(Ordering::Relaxed);
    for i in 0..20 {
        assert_eq!(
            http_get(&edge, "/v1/products").await,
            200,
            "call {i} after the kill"
        );
    }
    assert!(
        served.load(Ordering::Relaxed) > before,
        "the live instance served calls"
    );
    let _ = extra.kill().await;
    assert!(system.stop().await);
}
