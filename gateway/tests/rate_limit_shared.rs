//! Rate limits across two edges behind one load balancer: with the edges gossiping what they
//! admit over a real nats-server, a principal gets its configured rate once, not once per
//! edge, whether its requests are spread over both edges or all sent to one.
//!
//! The edges run with every context down: `GET /v1/products` passes the limiter before it
//! reaches the (absent) catalog, so anything but 429 was admitted.
#![allow(clippy::unwrap_used)]

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use polyshop_platform::{
    config::DiscoveryMode,
    shutdown,
    testing::{self, NatsServer, eventually},
};
use tokio::{task::JoinHandle, time::Instant};

const RATE: u32 = 20;
const BURST: u32 = 20;
const SENDING: Duration = Duration::from_secs(3);
/// A pause between one sender's requests: 500 a second, 25 times the rate, so every token is
/// taken within 2 ms of its refill while the senders leave the two cores to the edges.
const PACE: Duration = Duration::from_millis(2);

/// Two edges on one test process, every context behind them down.
struct Edges {
    a: SocketAddr,
    b: SocketAddr,
    stop: shutdown::Trigger,
    tasks: Vec<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Edges {
    /// Two edges sharing limits over `nats`, or each limiting alone without it.
    async fn start(nats: Option<&NatsServer>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = testing::settings(dir.path());
        settings.gateway.rate_per_sec = RATE;
        settings.gateway.rate_burst = BURST;
        let closed = Some("http://127.0.0.1:1".to_owned());
        for url in [
            &mut settings.user.url,
            &mut settings.catalog.url,
            &mut settings.inventory.url,
            &mut settings.order.url,
            &mut settings.payment.url,
            &mut settings.notification.url,
        ] {
            url.clone_from(&closed);
        }
        if let Some(nats) = nats {
            settings.discovery.mode = DiscoveryMode::Nats;
            settings.nats.url = Some(nats.url());
        }
        let (stop, stopped) = shutdown::channel();
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..2 {
            let (listener, addr) = testing::listener().await;
            let (s, w) = (settings.clone(), stopped.clone());
            tasks.push(tokio::spawn(async move {
                polyshop_gateway::serve(s, listener, w.wait())
                    .await
                    .expect("gateway runs");
            }));
            addrs.push(addr);
        }
        let edges = Self {
            a: addrs[0],
            b: addrs[1],
            stop,
            tasks,
            _dir: dir,
        };
        let probe = Principal::at([127, 0, 0, 1]);
        for edge in [edges.a, edges.b] {
            eventually("the edge to answer /healthz", async || {
                probe.status(edge, "/healthz").await == StatusCode::OK
            })
            .await;
        }
        edges
    }

    async fn stop(self) {
        self.stop.fire();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// A client whose requests come from its own loopback address: to the edge, its own principal.
#[derive(Clone)]
struct Principal(Client<HttpConnector, Full<Bytes>>);

impl Principal {
    fn at(ip: [u8; 4]) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(IpAddr::V4(Ipv4Addr::from(ip))));
        Self(Client::builder(TokioExecutor::new()).build(connector))
    }

    async fn status(&self, edge: SocketAddr, path: &str) -> StatusCode {
        self.answer(edge, path).await.0
    }

    async fn answer(&self, edge: SocketAddr, path: &str) -> (StatusCode, HeaderMap) {
        let request = Request::get(format!("http://{edge}{path}"))
            .body(Full::default())
            .unwrap();
        let response = self.0.request(request).await.expect("the edge answers");
        let (parts, body) = response.into_parts();
        let _ = body.collect().await;
        (parts.status, parts.headers)
    }

    /// The tokens left after one more request to `edge`, as its `RateLimit` header says.
    async fn remaining(&self, edge: SocketAddr) -> u32 {
        let (_, headers) = self.answer(edge, "/v1/products").await;
        let value = headers["ratelimit"].to_str().unwrap();
        let r = value.split(';').find_map(|p| p.strip_prefix("r=")).unwrap();
        r.parse().unwrap()
    }

    /// Whether the edge let a request through its limiter.
    async fn admitted(&self, edge: SocketAddr) -> bool {
        self.status(edge, "/v1/products").await != StatusCode::TOO_MANY_REQUESTS
    }

    /// Sends to `edge` until `until`; returns how many requests were admitted.
    fn send_until(&self, edge: SocketAddr, until: Instant) -> JoinHandle<u32> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut admitted = 0;
            while Instant::now() < until {
                admitted += u32::from(me.admitted(edge).await);
                tokio::time::sleep(PACE).await;
            }
            admitted
        })
    }
}

/// What a principal may get in `SENDING`: the burst and the refill, within 10%.
fn assert_one_limit(what: &str, admitted: u32) {
    let allowed = f64::from(RATE) * SENDING.as_secs_f64() + f64::from(BURST);
    let got = f64::from(admitted);
    testing::announce(&format!("{what}: {admitted} admitted (limit {allowed})"));
    assert!(
        (allowed * 0.9..=allowed * 1.1).contains(&got),
        "{what}: {admitted} admitted, the limit is {allowed} ± 10%"
    );
}

/// Waits until each edge debits what the other admits: a fresh principal that spends its burst
/// on one edge finds it spent on the other, bar what refilled meanwhile (a subscription made
/// late would show a full bucket).
async fn wait_until_shared(edges: &Edges) {
    let mut host = 0u8;
    for (from, to) in [(edges.a, edges.b), (edges.b, edges.a)] {
        eventually("the edges to share their limits", async || {
            host += 1;
            let p = Principal::at([127, 0, 1, host]);
            for _ in 0..BURST {
                assert!(p.admitted(from).await, "a fresh principal's burst passes");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            p.remaining(to).await < BURST / 2
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_gets_its_rate_once_over_two_edges_that_share_over_nats() {
    let nats = NatsServer::start().await;
    let edges = Edges::start(Some(&nats)).await;
    wait_until_shared(&edges).await;

    // Spread over both edges, as a load balancer does.
    let p = Principal::at([127, 0, 0, 2]);
    let until = Instant::now() + SENDING;
    let (on_a, on_b) = (p.send_until(edges.a, until), p.send_until(edges.b, until));
    let (on_a, on_b) = (on_a.await.unwrap(), on_b.await.unwrap());
    assert!(
        on_a > 0 && on_b > 0,
        "both edges admit some: {on_a} + {on_b}"
    );
    assert_one_limit(
        &format!("spread over two edges ({on_a} + {on_b})"),
        on_a + on_b,
    );

    // All to edge A, while edge B serves someone else: that one keeps a limit of its own.
    let (p, q) = (Principal::at([127, 0, 0, 3]), Principal::at([127, 0, 0, 4]));
    let until = Instant::now() + SENDING;
    let (p_on_a, q_on_b) = (p.send_until(edges.a, until), q.send_until(edges.b, until));
    assert_one_limit("all to one edge", p_on_a.await.unwrap());
    assert_one_limit("another principal on the other edge", q_on_b.await.unwrap());
    edges.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sharing_each_edge_enforces_the_full_rate() {
    let edges = Edges::start(None).await;
    let p = Principal::at([127, 0, 0, 5]);
    let until = Instant::now() + SENDING;
    let (on_a, on_b) = (p.send_until(edges.a, until), p.send_until(edges.b, until));
    let admitted = on_a.await.unwrap() + on_b.await.unwrap();
    let one_limit = RATE * SENDING.as_secs() as u32 + BURST;
    testing::announce(&format!(
        "per edge: {admitted} admitted (one limit {one_limit})"
    ));
    assert!(
        admitted * 10 >= one_limit * 18,
        "two edges alone admit about twice the limit: {admitted}, one limit {one_limit}"
    );
    edges.stop().await;
}
