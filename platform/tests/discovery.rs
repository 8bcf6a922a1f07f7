//! Registry and discovery against a real nats-server: callers balance over the registered
//! instances, a deregistered instance stops getting calls, one that dies without deregistering
//! is dropped after the TTL, and the configured URL serves while nothing is registered.

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use polyshop_platform::{
    config::{DiscoveryMode, DiscoverySettings},
    discovery, shutdown,
    testing::{self, NatsServer, eventually, jetstream},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A gRPC server whose health answers for the service named `me` only, so a caller can tell
/// which instance it reached. Stops when the returned trigger fires.
async fn instance(me: &str) -> (SocketAddr, shutdown::Trigger) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(me, tonic_health::ServingStatus::Serving)
        .await;
    let (listener, addr) = testing::listener().await;
    let (stop, stopped) = shutdown::channel();
    tokio::spawn(async move {
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
    (addr, stop)
}

/// Which of `names` answer through `channel`, over a burst of calls.
async fn reached(channel: &tonic::transport::Channel, names: &[&str]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        for name in names {
            let mut client = HealthClient::new(channel.clone());
            let ok = client
                .check(HealthCheckRequest {
                    service: (*name).to_owned(),
                })
                .await
                .is_ok();
            if ok {
                seen.insert((*name).to_owned());
            }
        }
    }
    seen
}

#[tokio::test]
async fn callers_follow_the_registry_and_fall_back_to_the_configured_url() {
    let nats = NatsServer::start().await;
    let js = jetstream(&nats).await;
    let settings = DiscoverySettings {
        mode: DiscoveryMode::Nats,
        ttl_secs: 2,
        heartbeat_ms: 300,
        poll_ms: 100,
    };
    let store = discovery::bucket(&js, &settings).await.expect("bucket");
    assert!(
        discovery::instances(&store)
            .await
            .expect("empty list")
            .is_empty()
    );
    let (fallback_addr, _fallback) = instance("fallback").await;
    let (a_addr, stop_a) = instance("a").await;
    let (b_addr, _b) = instance("b").await;
    // Held to the end: dropping a trigger fires it.
    let (_callers, stop_callers) = shutdown::channel();

    let channel = discovery::channel(
        js.clone(),
        settings.clone(),
        "catalog",
        &format!("http://{fallback_addr}"),
        |e| e.timeout(Duration::from_secs(1)),
        stop_callers,
    )
    .expect("channel");
    let all = ["fallback", "a", "b"];
    eventually(
        "the fallback serves while nothing is registered",
        async || reached(&channel, &all).await == BTreeSet::from(["fallback".to_owned()]),
    )
    .await;

    let (deregister_a, a_registered) = shutdown::channel();
    discovery::register(
        js.clone(),
        settings.clone(),
        "catalog",
        format!("http://{a_addr}"),
        a_registered,
    );
    let (_keep_b, b_registered) = shutdown::channel();
    discovery::register(
        js.clone(),
        settings.clone(),
        "catalog",
        format!("http://{b_addr}"),
        b_registered,
    );
    // Another service's instance is not a catalog.
    let (_keep_other, other_registered) = shutdown::channel();
    discovery::register(
        js.clone(),
        settings.clone(),
        "payment",
        format!("http://{fallback_addr}"),
        other_registered,
    );
    eventually("both instances are registered", async || {
        discovery::instances(&store)
            .await
            .is_ok_and(|l| l.iter().filter(|i| i.service == "catalog").count() == 2)
    })
    .await;
    eventually("calls spread over both registered instances", async || {
        reached(&channel, &all).await == BTreeSet::from(["a".to_owned(), "b".to_owned()])
    })
    .await;
    let listed = discovery::instances(&store).await.expect("list");
    assert_eq!(
        listed.iter().filter(|i| i.service == "catalog").count(),
        2,
        "{listed:?}"
    );

    // A graceful stop deregisters at once.
    deregister_a.fire();
    stop_a.fire();
    eventually("a deregistered instance gets no calls", async || {
        reached(&channel, &all).await == BTreeSet::from(["b".to_owned()])
    })
    .await;

    // A crashed instance left its entry and stopped heartbeating: only the TTL removes it.
    let (c_addr, stop_c) = instance("c").await;
    let c = discovery::Instance {
        service: "catalog".into(),
        instance: "crashed".into(),
        url: format!("http://{c_addr}"),
        started_at: 0,
    };
    store
        .put(
            "catalog.crashed",
            serde_json::to_vec(&c).expect("json").into(),
        )
        .await
        .expect("put");
    let all = ["fallback", "b", "c"];
    eventually("a new instance is found", async || {
        reached(&channel, &all).await.contains("c")
    })
    .await;
    stop_c.fire();
    eventually("the crashed instance's entry expires", async || {
        discovery::instances(&store)
            .await
            .is_ok_and(|l| l.iter().all(|i| i.instance != c.instance))
    })
    .await;
    eventually("calls go to the live instance only", async || {
        reached(&channel, &all).await == BTreeSet::from(["b".to_owned()])
    })
    .await;
}
