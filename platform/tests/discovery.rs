//! Discovery against real peers: the NATS registry (watched: an instance registered at
//! runtime gets calls within 2 s, a deregistered one none, a crashed one is ejected after one
//! failed call and dropped after the TTL, the configured URL serves while nothing is
//! registered) and `dns` mode against a local DNS server fixture.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use polyshop_platform::{
    config::{DiscoveryMode, DiscoverySettings},
    discovery::{self, Balanced, Discovery},
    shutdown,
    testing::{self, NatsServer, eventually, jetstream, poll_until},
};
use tokio::net::{TcpListener, UdpSocket};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A gRPC server on `listener` whose health answers for the service named `me` only, so a
/// caller can tell which instance it reached. Stops when the returned trigger fires.
fn serve_health(me: &str, listener: TcpListener) -> shutdown::Trigger {
    let (reporter, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = shutdown::channel();
    let me = me.to_owned();
    tokio::spawn(async move {
        reporter
            .set_service_status(&me, tonic_health::ServingStatus::Serving)
            .await;
        // Keep the reporter alive with the server.
        let _reporter = reporter;
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stopped.wait(),
            )
            .await
    });
    stop
}

async fn instance(me: &str) -> (SocketAddr, shutdown::Trigger) {
    let (listener, addr) = testing::listener().await;
    (addr, serve_health(me, listener))
}

/// Asks `names` in turn through `client`: which answered, and how many calls failed.
async fn reached(client: &Balanced, names: &[&str], rounds: usize) -> (BTreeSet<String>, usize) {
    let mut seen = BTreeSet::new();
    let mut failed = 0;
    for _ in 0..rounds {
        for name in names {
            let mut health = HealthClient::new(client.clone());
            match health
                .check(HealthCheckRequest {
                    service: (*name).to_owned(),
                })
                .await
            {
                Ok(_) => {
                    seen.insert((*name).to_owned());
                }
                // NOT_FOUND: another instance answered for itself.
                Err(s) if s.code() == tonic::Code::NotFound => {}
                Err(_) => failed += 1,
            }
        }
    }
    (seen, failed)
}

fn nats_settings() -> DiscoverySettings {
    DiscoverySettings {
        mode: DiscoveryMode::Nats,
        ttl_secs: 2,
        heartbeat_ms: 300,
        ..DiscoverySettings::default()
    }
}

#[tokio::test]
async fn callers_follow_the_watched_registry_and_fall_back_to_the_configured_url() {
    let nats = NatsServer::start().await;
    let js = jetstream(&nats).await;
    let settings = nats_settings();
    let store = discovery::bucket(&js, &settings, 1).await.expect("bucket");
    assert!(discovery::instances(&store).await.expect("list").is_empty());
    let (fallback_addr, _fallback) = instance("fallback").await;
    let (a_addr, stop_a) = instance("a").await;
    let (b_addr, _b) = instance("b").await;
    // Held to the end: dropping a trigger fires it.
    let (_callers, callers_stopped) = shutdown::channel();
    let callers = Discovery::new(settings.clone(), 1, Some(js.clone()), callers_stopped);
    let client = callers
        .balanced("catalog", &format!("http://{fallback_addr}"), |e| {
            e.timeout(Duration::from_secs(1))
        })
        .expect("client");
    let all = ["fallback", "a", "b"];
    eventually(
        "the fallback serves while nothing is registered",
        async || reached(&client, &all, 3).await.0 == BTreeSet::from(["fallback".to_owned()]),
    )
    .await;

    let (deregister_a, a_stopped) = shutdown::channel();
    Discovery::new(settings.clone(), 1, Some(js.clone()), a_stopped)
        .register("catalog", format!("http://{a_addr}"));
    // Registered at runtime, found through the watch (not a poll) within 2 s.
    let found = poll_until(Duration::from_secs(2), async || {
        reached(&client, &all, 1)
            .await
            .0
            .contains("a")
            .then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "a registered instance gets calls within 2 s"
    );
    let (_keep_b, b_stopped) = shutdown::channel();
    Discovery::new(settings.clone(), 1, Some(js.clone()), b_stopped)
        .register("catalog", format!("http://{b_addr}"));
    // Another service's instance is not a catalog.
    let (_keep_other, other_stopped) = shutdown::channel();
    Discovery::new(settings.clone(), 1, Some(js.clone()), other_stopped)
        .register("payment", format!("http://{fallback_addr}"));
    eventually("calls spread over both registered instances", async || {
        reached(&client, &all, 5).await.0 == BTreeSet::from(["a".to_owned(), "b".to_owned()])
    })
    .await;

    // A graceful stop deregisters at once.
    deregister_a.fire();
    stop_a.fire();
    eventually("a deregistered instance gets no calls", async || {
        reached(&client, &all, 5).await == (BTreeSet::from(["b".to_owned()]), 0)
    })
    .await;

    // A crashed instance left its entry and stopped heartbeating.
    let (c_addr, stop_c) = instance("c").await;
    let c = discovery::Instance::new("catalog", "crashed", format!("http://{c_addr}"));
    store
        .put(
            "catalog.crashed",
            serde_json::to_vec(&c).expect("json").into(),
        )
        .await
        .expect("put");
    let all = ["b", "c"];
    eventually("a new instance is found", async || {
        reached(&client, &all, 3).await.0.contains("c")
    })
    .await;
    stop_c.fire();
    // Its connection is refused: the first call to it fails and ejects it, none after.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (seen, failed) = reached(&client, &all, 20).await;
    assert!(failed <= 1, "{failed} calls failed on the dead instance");
    assert_eq!(seen, BTreeSet::from(["b".to_owned()]));
    eventually("the crashed instance's entry expires", async || {
        discovery::instances(&store)
            .await
            .is_ok_and(|l| l.iter().all(|i| i.instance != c.instance))
    })
    .await;
}

#[tokio::test]
async fn weights_in_the_registry_split_calls_90_10() {
    let nats = NatsServer::start().await;
    let js = jetstream(&nats).await;
    let settings = DiscoverySettings {
        version_weights: BTreeMap::from([("canary".to_owned(), 10)]),
        ..nats_settings()
    };
    let (stable_addr, _stable) = instance("stable").await;
    let (canary_addr, _canary) = instance("canary").await;
    let (_keep, stopped) = shutdown::channel();
    let stable = DiscoverySettings {
        weight: 90,
        ..settings.clone()
    };
    Discovery::new(stable, 1, Some(js.clone()), stopped.clone())
        .register("catalog", format!("http://{stable_addr}"));
    let canary = DiscoverySettings {
        version: "canary".into(),
        ..settings.clone()
    };
    Discovery::new(canary, 1, Some(js.clone()), stopped.clone())
        .register("catalog", format!("http://{canary_addr}"));
    let callers = Discovery::new(settings, 1, Some(js.clone()), stopped);
    let client = callers
        .balanced("catalog", "http://127.0.0.1:1", |e| e)
        .expect("client");
    eventually("both registered", async || {
        client.pool().members().len() == 2
    })
    .await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..1000 {
        for name in ["stable", "canary"] {
            let ok = HealthClient::new(client.clone())
                .check(HealthCheckRequest {
                    service: name.to_owned(),
                })
                .await
                .is_ok();
            if ok {
                *counts.entry(name.to_owned()).or_default() += 1;
            }
        }
    }
    let canary_share = counts["canary"] as f64 / 1000.0;
    assert!(
        (canary_share - 0.1).abs() < 0.03,
        "canary got {canary_share} of the calls: {counts:?}"
    );
}

/// A DNS server on loopback answering A queries from `records` (name → addresses), so a
/// test can change what a name resolves to.
async fn dns_fixture(records: Arc<Mutex<BTreeMap<String, Vec<Ipv4Addr>>>>) -> SocketAddr {
    use hickory_proto::{
        op::{Message, MessageType, ResponseCode},
        rr::{RData, Record, rdata::A},
    };
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut answer = Message::new(
                query.metadata.id,
                MessageType::Response,
                query.metadata.op_code,
            );
            answer.metadata.recursion_desired = query.metadata.recursion_desired;
            answer.metadata.recursion_available = true;
            for q in &query.queries {
                answer.add_query(q.clone());
                let name = q.name().to_ascii().trim_end_matches('.').to_owned();
                let addresses = records
                    .lock()
                    .expect("records")
                    .get(&name)
                    .cloned()
                    .unwrap_or_default();
                if q.query_type() == hickory_proto::rr::RecordType::A {
                    for ip in addresses {
                        answer.add_answer(Record::from_rdata(q.name().clone(), 0, RData::A(A(ip))));
                    }
                }
            }
            if answer.answers.is_empty() && q_is_a(&query) {
                answer.metadata.response_code = ResponseCode::NXDomain;
            }
            if let Ok(bytes) = answer.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}

fn q_is_a(query: &hickory_proto::op::Message) -> bool {
    query
        .queries
        .iter()
        .any(|q| q.query_type() == hickory_proto::rr::RecordType::A)
}

#[tokio::test]
async fn dns_mode_follows_the_records_of_a_headless_service() {
    // Two instances on one port, as two pods behind a headless Service: 127.0.0.1 and
    // 127.0.0.2 (all of 127/8 is loopback on Linux).
    let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = first.local_addr().expect("addr").port();
    let second = TcpListener::bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        port,
    ))
    .await
    .expect("bind 127.0.0.2 on the same port");
    let _a = serve_health("a", first);
    let _b = serve_health("b", second);
    let records = Arc::new(Mutex::new(BTreeMap::from([(
        "catalog-headless.polyshop.test".to_owned(),
        vec![Ipv4Addr::new(127, 0, 0, 1)],
    )])));
    let server = dns_fixture(records.clone()).await;
    let settings = DiscoverySettings {
        mode: DiscoveryMode::Dns,
        poll_ms: 100,
        dns_server: Some(server.to_string()),
        ..DiscoverySettings::default()
    };
    let (_keep, stopped) = shutdown::channel();
    let callers = Discovery::new(settings, 1, None, stopped);
    let client = callers
        .balanced(
            "catalog",
            &format!("http://catalog-headless.polyshop.test:{port}"),
            |e| e.timeout(Duration::from_secs(1)),
        )
        .expect("client");
    let names = ["a", "b"];
    eventually("the one record's instance answers", async || {
        reached(&client, &names, 3).await == (BTreeSet::from(["a".to_owned()]), 0)
    })
    .await;
    records.lock().expect("records").insert(
        "catalog-headless.polyshop.test".to_owned(),
        vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)],
    );
    eventually("a second record's instance gets calls", async || {
        reached(&client, &names, 5).await.0.len() == 2
    })
    .await;
    records.lock().expect("records").insert(
        "catalog-headless.polyshop.test".to_owned(),
        vec![Ipv4Addr::new(127, 0, 0, 2)],
    );
    eventually("a removed record's instance gets none", async || {
        reached(&client, &names, 5).await == (BTreeSet::from(["b".to_owned()]), 0)
    })
    .await;
}
