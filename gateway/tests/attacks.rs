//! Attacks on the edge by clients without a token, each against the real edge and its
//! contexts in this process: a flood of gRPC calls to random paths must not grow the metrics
//! (or memory), and one HTTP/2 connection trickling a thousand request bodies must not take
//! the edge from everyone else.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::HashSet,
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::start;
use futures::StreamExt;
use h2::client::SendRequest;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::{net::TcpStream, task::JoinHandle};

/// What `/metrics` may weigh after the flood: the edge's own series, the contexts' (they run
/// in this process and share the registry) and one `unknown` series per protocol and status.
/// Before routing came first, every random path added a counter and a 13-bucket histogram:
/// about 1.7 KB of exposition each, 17 MB for this flood.
const METRICS_BOUND: usize = 200 * 1024;

/// Growth of this process's resident memory allowed over the flood. The edge, three
/// contexts and the client share the process, so this is coarse: it catches a per-request
/// leak (the old labels cost ~4 MB of heap here), not allocator noise.
const RSS_GROWTH_BOUND_KIB: u64 = 48 * 1024;

/// An HTTP/2 (h2c) connection to `addr`; the task drives it until aborted.
async fn h2_connect(addr: SocketAddr) -> (SendRequest<Bytes>, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, task)
}

/// One unary gRPC call with an empty message; the answer's `grpc-status`.
async fn grpc_call(client: SendRequest<Bytes>, addr: SocketAddr, path: &str) -> String {
    let mut client = client.ready().await.unwrap();
    let request = Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    // The edge may answer (and end the stream) before the message is sent.
    let _ = body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true);
    let response = response.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    if let Some(status) = response.headers().get("grpc-status") {
        return status.to_str().unwrap().to_owned();
    }
    let mut body = response.into_body();
    while body.data().await.is_some() {}
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    trailers
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A path no route knows, in one of the shapes that reach different code at the edge.
fn random_path(i: usize) -> String {
    let token = polyshop_platform::new_id();
    match i % 4 {
        0 => format!("/{token}.Service/Method"),
        1 => format!("/polyshop.catalog.v1.CatalogService/{token}"),
        2 => format!("/grpc.health.v1.Health/{token}"),
        _ => format!("/grpc.reflection.{token}/Info"),
    }
}

/// This process's resident memory, when the kernel tells (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A port nothing listens on now, from below the ephemeral range (see `ports`).
fn free_port() -> SocketAddr {
    let port = polyshop_platform::ports::free_port().expect("a free port");
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Every value of label `name` in the exposition `text`.
fn label_values<'t>(text: &'t str, name: &str) -> HashSet<&'t str> {
    let key = format!("{name}=\"");
    text.lines()
        .filter_map(|line| {
            let start = line.find(&key)? + key.len();
            let len = line[start..].find('"')?;
            Some(&line[start..start + len])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_grpc_calls_to_random_paths_leave_metrics_and_memory_bounded() {
    let admin = free_port();
    let system = start(|s| s.gateway.admin_listen = Some(admin)).await;
    let rss_before = rss_kib();
    let (client, connection) = h2_connect(system.gateway).await;
    let paths: Vec<String> = (0..10_000).map(random_path).collect();
    let started = Instant::now();
    let statuses: Vec<String> = futures::stream::iter(&paths)
        .map(|path| grpc_call(client.clone(), system.gateway, path))
        .buffer_unordered(64)
        .collect()
        .await;
    let flood = started.elapsed();
    assert!(
        statuses.iter().all(|s| s == "12"),
        "every unknown method is UNIMPLEMENTED: {:?}",
        statuses.iter().collect::<HashSet<_>>()
    );
    connection.abort();
    let rss_after = rss_kib();

    let public = system.get("/metrics", None).await;
    assert_eq!(
        public.status,
        StatusCode::NOT_FOUND,
        "with an admin listener, the public port does not serve /metrics"
    );
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = http
        .get(format!("http://{admin}/metrics").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = std::str::from_utf8(&body).unwrap();
    // The probes beside it; the full check only there.
    for path in ["/livez", "/readyz", "/health"] {
        let probe = http
            .get(format!("http://{admin}{path}").parse().unwrap())
            .await
            .unwrap();
        let status = probe.status();
        let answer = probe.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(status, StatusCode::OK, "admin {path}: {answer:?}");
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert!(answer["status"].is_string(), "admin {path}: {answer}");
    }
    assert_eq!(
        system.get("/health", None).await.status,
        StatusCode::NOT_FOUND,
        "with an admin listener, the public port does not serve /health"
    );
    let counted = r#"polyshop_edge_requests_total{protocol="grpc",rpc="unknown",status="200"}"#;
    let flood_line = text.lines().find(|l| l.starts_with(counted));
    assert!(
        flood_line.is_some_and(|l| l.ends_with(" 10000")),
        "the flood is counted under rpc=\"unknown\": {flood_line:?}"
    );
    let random: HashSet<&str> = paths.iter().map(String::as_str).collect();
    for name in ["rpc", "method"] {
        let leaked: Vec<&str> = label_values(text, name)
            .into_iter()
            .filter(|v| random.contains(v))
            .collect();
        assert!(
            leaked.is_empty(),
            "random paths as {name} labels: {leaked:?}"
        );
    }
    for path in paths.iter().step_by(97) {
        let token = path
            .trim_start_matches('/')
            .split(['/', '.'])
            .find(|p| p.len() > 30);
        assert!(
            token.is_none_or(|t| !text.contains(t)),
            "{path} appears in /metrics"
        );
    }
    assert!(
        body.len() < METRICS_BOUND,
        "/metrics is {} bytes after the flood, bound {METRICS_BOUND}",
        body.len()
    );
    let growth = rss_before
        .zip(rss_after)
        .map(|(before, after)| after.saturating_sub(before));
    eprintln!(
        "flood of {} calls: {flood:?}; /metrics {} bytes; RSS {rss_before:?} -> {rss_after:?} KiB",
        paths.len(),
        body.len()
    );
    if let Some(growth) = growth {
        assert!(
            growth < RSS_GROWTH_BOUND_KIB,
            "RSS grew by {growth} KiB over the flood, bound {RSS_GROWTH_BOUND_KIB}"
        );
    }
    system.stop().await;
}

/// What became of one trickled request: the edge's HTTP status (`None` if the stream was
/// reset) and when it came.
type Answer = JoinHandle<(Option<StatusCode>, Instant)>;

/// One JSON request on `client` that declares a 100-byte body and sends one byte of it.
/// `None` once the connection is gone.
async fn trickle(
    client: SendRequest<Bytes>,
    addr: SocketAddr,
) -> Option<(SendRequest<Bytes>, h2::SendStream<Bytes>, Answer)> {
    let mut client = client.ready().await.ok()?;
    let request = Request::post(format!("http://{addr}/v1/auth/login"))
        .header("content-type", "application/json")
        .header("content-length", "100")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).ok()?;
    body.send_data(Bytes::from_static(b"{"), false).ok()?;
    let answer = tokio::spawn(async move {
        let status = response.await.ok().map(|r| r.status());
        (status, Instant::now())
    });
    Some((client, body, answer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_trickling_streams_on_one_connection_leave_the_edge_serving_others() {
    const STREAMS: usize = 1000;
    const BODY_TIMEOUT: Duration = Duration::from_secs(2);
    // Half the slots the trickle would take if a waiting body held one: an edge that admits
    // 1,000 streams and counts waiting bodies sheds everyone else.
    let system = start(|s| {
        s.gateway.max_concurrency = 500;
        s.gateway.body_timeout_ms = 2_000;
    })
    .await;
    let limit = usize::try_from(system.settings.gateway.max_streams_per_connection).unwrap();
    let (client, connection) = h2_connect(system.gateway).await;
    // One exchange first, so the server's SETTINGS have been applied to the client.
    let health = grpc_call(
        client.clone(),
        system.gateway,
        "/grpc.health.v1.Health/Check",
    )
    .await;
    assert_eq!(health, "0");
    assert_eq!(
        client.current_max_send_streams(),
        limit,
        "the edge announces its per-connection stream limit"
    );

    let addr = system.gateway;
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel::<Answer>();
    let opener = tokio::spawn(async move {
        let mut attacker = client;
        let mut held = Vec::with_capacity(STREAMS);
        for _ in 0..STREAMS {
            let Some((handle, stream, answer)) = trickle(attacker, addr).await else {
                break;
            };
            attacker = handle;
            held.push(stream);
            let _ = answers_tx.send(answer);
        }
        // Hold every body unfinished until the test ends (it aborts this task).
        std::future::pending::<()>().await;
        drop(held);
    });
    // Time for the edge to take in the first streams' heads and bytes.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let asked = Instant::now();
    let listed = tokio::time::timeout(
        Duration::from_secs(2),
        system.get("/v1/products?pageSize=1", None),
    )
    .await
    .expect("GET /v1/products within 2 s");
    let took = asked.elapsed();
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);

    // The streams the edge took time out together; the ones the client had to queue open
    // only as those close, and time out a whole timeout later. So what is answered within
    // half a timeout of the first answer is what the edge had open at once.
    let first = answers.recv().await.unwrap();
    let (status, first_at) = tokio::time::timeout(BODY_TIMEOUT * 2, first)
        .await
        .expect("a trickled body is answered after the body timeout")
        .unwrap();
    assert_eq!(status, Some(StatusCode::REQUEST_TIMEOUT));
    let window = first_at + BODY_TIMEOUT / 2;
    tokio::time::sleep_until(window.into()).await;
    let mut asked_for = 1;
    let mut batch = vec![status];
    while let Ok(answer) = answers.try_recv() {
        asked_for += 1;
        if answer.is_finished() {
            let (status, at) = answer.await.unwrap();
            if at < window {
                batch.push(status);
            }
        }
    }
    eprintln!(
        "{asked_for} trickling requests on one connection so far; fresh GET /v1/products took \
         {took:?}; {} answered in the first batch",
        batch.len()
    );
    assert!(
        batch.len() <= limit,
        "{} trickled requests were answered together: more than {limit} were open at once",
        batch.len()
    );
    assert!(
        batch
            .iter()
            .all(|s| *s == Some(StatusCode::REQUEST_TIMEOUT)),
        "every trickled body times out with 408, none is shed: {batch:?}"
    );
    opener.abort();
    connection.abort();
    system.stop().await;
}

/// A call that [`held_call`] holds open: its unfinished request body, and the task waiting
/// for its answer (which keeps the stream polled).
type Held = (h2::SendStream<Bytes>, JoinHandle<()>);

/// A [`held_call`] whose answer is awaited in a task; aborting the task and dropping the
/// body resets the stream.
async fn hold(client: &SendRequest<Bytes>, addr: SocketAddr, xff: &str) -> Held {
    let (body, response) = held_call(client.clone(), addr, xff).await;
    let waiting = tokio::spawn(async move {
        let _ = response.await;
    });
    (body, waiting)
}

/// A gRPC ListProducts call on `client` whose request body never ends: the catalog waits for
/// it, so the call holds its in-flight slots at the edge until the stream is dropped (or its
/// 20 s deadline passes). `xff` is the `X-Forwarded-For` sent.
async fn held_call(
    client: SendRequest<Bytes>,
    addr: SocketAddr,
    xff: &str,
) -> (h2::SendStream<Bytes>, h2::client::ResponseFuture) {
    let mut client = client.ready().await.unwrap();
    let request = Request::post(format!(
        "http://{addr}/polyshop.catalog.v1.CatalogService/ListProducts"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("grpc-timeout", "20S")
    .header("x-forwarded-for", xff)
    .body(())
    .unwrap();
    let (response, body) = client.send_request(request, false).unwrap();
    (body, response)
}

/// A JSON `GET /v1/products` from client `xff` (behind the trusted proxy).
async fn list_as(system: &common::System, xff: &str) -> common::Answer {
    system
        .raw(
            http::Method::GET,
            "/v1/products?pageSize=1",
            &[("x-forwarded-for", xff)],
            Bytes::new(),
        )
        .await
}

/// Holds a call from each of `clients` on `client`, then asks as `probe` until the edge
/// refuses it; returns the held calls and the refusal. A held call the edge answered (it
/// raced a probe for the last slot) is held again.
async fn hold_until_refused(
    system: &common::System,
    client: &SendRequest<Bytes>,
    clients: &[String],
    probe: &str,
) -> (Vec<Held>, common::Answer) {
    let mut held = Vec::new();
    for xff in clients {
        held.push(hold(client, system.gateway, xff).await);
    }
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            for (call, xff) in held.iter_mut().zip(clients) {
                if call.1.is_finished() {
                    *call = hold(client, system.gateway, xff).await;
                }
            }
            let r = list_as(system, probe).await;
            if r.status != StatusCode::OK && held.iter().all(|(_, w)| !w.is_finished()) {
                return r;
            }
        }
    })
    .await
    .expect("the probe is refused while the held calls run");
    (held, refused)
}

/// The `grpc-status` and `grpc-message` of an answer (trailers-only, or in its trailers).
async fn grpc_status(response: http::Response<h2::RecvStream>) -> (String, String) {
    let header = |h: &http::HeaderMap, n: &str| {
        h.get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    if response.headers().contains_key("grpc-status") {
        return (
            header(response.headers(), "grpc-status"),
            header(response.headers(), "grpc-message"),
        );
    }
    let mut body = response.into_body();
    while body.data().await.is_some() {}
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    (
        header(&trailers, "grpc-status"),
        header(&trailers, "grpc-message"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holding_its_share_of_slots_is_refused_while_other_addresses_are_served() {
    const PER_IP: usize = 4;
    const GREEDY: &str = "203.0.113.7";
    // The test's connections come from 127.0.0.1, a trusted proxy: `X-Forwarded-For` names
    // the client, as behind a load balancer.
    let system = start(|s| {
        s.gateway.max_concurrent_per_ip = PER_IP;
        s.gateway.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let addr = system.gateway;
    let (client, connection) = h2_connect(addr).await;

    // GREEDY holds PER_IP slow calls on one HTTP/2 connection; its next request is refused.
    let (held, refused) =
        hold_until_refused(&system, &client, &vec![GREEDY.to_owned(); PER_IP], GREEDY).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        refused.body
    );
    assert_eq!(refused.body["error"]["status"], "RESOURCE_EXHAUSTED");
    let message = refused.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("in flight from your address") && message.contains("at most 4"),
        "the refusal says why: {message}"
    );
    assert_eq!(refused.headers[http::header::RETRY_AFTER], "1");

    // Over gRPC the same address gets RESOURCE_EXHAUSTED.
    let (mut body, response) = held_call(client.clone(), addr, GREEDY).await;
    let _ = body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true);
    let (status, message) = grpc_status(response.await.unwrap()).await;
    assert_eq!(status, "8", "RESOURCE_EXHAUSTED: {message}");
    assert!(message.contains("in%20flight"), "{message}");

    // Other clients behind the same proxy are served, and so is the proxy itself.
    for who in ["203.0.113.8", "2001:db8::1"] {
        let other = list_as(&system, who).await;
        assert_eq!(other.status, StatusCode::OK, "{who}: {:?}", other.body);
    }
    let proxy = system.get("/v1/products?pageSize=1", None).await;
    assert_eq!(proxy.status, StatusCode::OK, "{:?}", proxy.body);

    // A client on its own socket address (127.0.0.2, not a proxy) is served too.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if socket.bind("127.0.0.2:0".parse().unwrap()).is_ok() {
        let tcp = socket.connect(addr).await.unwrap();
        let (other, other_connection) = h2::client::handshake(tcp).await.unwrap();
        let other_connection = tokio::spawn(async move {
            let _ = other_connection.await;
        });
        let path = "/polyshop.catalog.v1.CatalogService/ListProducts";
        let status = grpc_call(other, addr, path).await;
        assert_eq!(status, "0", "a client at 127.0.0.2 is served");
        other_connection.abort();
    }

    // An IPv6 client counts by its /64: four calls held from four addresses of one /64, and
    // a fifth address of it is refused.
    let same_64: Vec<String> = (1..=PER_IP).map(|i| format!("2001:db8:0:1::{i}")).collect();
    let (held_v6, refused_v6) =
        hold_until_refused(&system, &client, &same_64, "2001:db8:0:1:ffff::9").await;
    assert_eq!(refused_v6.status, StatusCode::TOO_MANY_REQUESTS);

    // Once GREEDY's calls end, it is served again.
    for (body, waiting) in held.into_iter().chain(held_v6) {
        waiting.abort();
        drop(body);
    }
    drop(client);
    connection.abort();
    let served = tokio::time::timeout(Duration::from_secs(5), async {
        while list_as(&system, GREEDY).await.status != StatusCode::OK {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        served.is_ok(),
        "GREEDY's slots come back when its calls end"
    );
    system.stop().await;
}
