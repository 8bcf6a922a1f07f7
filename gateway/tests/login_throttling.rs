//! Login throttling that holds against a spread-out attacker: guesses for one account from
//! many addresses meet the per-account bucket, and `X-Forwarded-For` only moves a client to
//! another bucket when a trusted proxy says so.
//!
//! The edge runs with every context down: a login that passes the limiter gets 503 from the
//! absent user service, so anything but 429 was admitted.
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
use polyshop::user::v1::{LoginRequest, user_service_client::UserServiceClient};
use polyshop_platform::{
    config::GatewaySettings,
    shutdown,
    testing::{self, eventually},
};
use tokio::task::JoinHandle;

/// One edge, every context behind it down.
struct Edge {
    addr: SocketAddr,
    stop: shutdown::Trigger,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Edge {
    async fn start(configure: impl FnOnce(&mut GatewaySettings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = testing::settings(dir.path());
        settings.gateway.account_rate_per_sec = 0.2;
        settings.gateway.account_rate_burst = 5;
        configure(&mut settings.gateway);
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
        let (stop, stopped) = shutdown::channel();
        let (listener, addr) = testing::listener().await;
        let task = tokio::spawn(async move {
            polyshop_gateway::serve(settings, listener, stopped.wait())
                .await
                .expect("gateway runs");
        });
        let probe = From::at([127, 0, 0, 1]);
        eventually("the edge to answer /healthz", async || {
            probe.send(addr, "GET", "/healthz", &[], "").await.0 == StatusCode::OK
        })
        .await;
        Self {
            addr,
            stop,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.stop.fire();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// A client whose requests come from its own loopback address.
struct From(Client<HttpConnector, Full<Bytes>>);

impl From {
    fn at(ip: [u8; 4]) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(IpAddr::V4(Ipv4Addr::from(ip))));
        Self(Client::builder(TokioExecutor::new()).build(connector))
    }

    async fn send(
        &self,
        edge: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{edge}{path}"))
            .header("content-type", "application/json");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = self.0.request(request).await.expect("the edge answers");
        let (parts, body) = response.into_parts();
        let _ = body.collect().await;
        (parts.status, parts.headers)
    }

    async fn login(
        &self,
        edge: SocketAddr,
        login: &str,
        xff: Option<&str>,
    ) -> (StatusCode, HeaderMap) {
        let body = format!(r#"{{"login":"{login}","password":"wrong-password-1"}}"#);
        let headers: Vec<(&str, &str)> = xff.map(|v| ("x-forwarded-for", v)).into_iter().collect();
        self.send(edge, "POST", "/v1/auth/login", &headers, &body)
            .await
    }
}

#[tokio::test]
async fn twenty_bad_logins_for_one_account_from_twenty_addresses_are_throttled() {
    let edge = Edge::start(|_| {}).await;
    let mut refused = Vec::new();
    for host in 1..=20u8 {
        // Each address is fresh: its own per-IP bucket is full.
        let (status, headers) = From::at([127, 0, 3, host])
            .login(edge.addr, "victim", None)
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=5).contains(&retry), "retry after {retry}s");
            refused.push(host);
        }
    }
    assert_eq!(
        refused,
        (6..=20).collect::<Vec<_>>(),
        "the account's burst of 5 passes, then every address is refused"
    );
    // Another account from a used address is not affected.
    let (status, _) = From::at([127, 0, 3, 20])
        .login(edge.addr, "bystander", None)
        .await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS);
    edge.stop().await;
}

#[tokio::test]
async fn grpc_logins_meet_the_same_account_bucket() {
    let edge = Edge::start(|_| {}).await;
    let mut client = UserServiceClient::new(testing::channel(edge.addr));
    let mut codes = Vec::new();
    for login in [
        "victim", "Victim", "victim ", "VICTIM", "victim", "victim", "victim",
    ] {
        let status = client
            .login(LoginRequest {
                login: login.into(),
                password: "wrong-password-1".into(),
            })
            .await
            .expect_err("no user service");
        codes.push(status.code());
    }
    let limited = codes
        .iter()
        .filter(|c| **c == tonic::Code::ResourceExhausted)
        .count();
    assert_eq!(limited, 2, "5 pass, 2 are refused: {codes:?}");
    edge.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_ignored_from_an_untrusted_peer_and_honoured_from_a_trusted_one() {
    // Per-IP bucket of 2 logins; the account bucket out of the way.
    let edge = Edge::start(|g| {
        g.auth_rate_per_sec = 1;
        g.auth_rate_burst = 2;
        g.account_rate_burst = 0;
        g.trusted_proxies = vec!["127.0.4.0/24".into()];
    })
    .await;
    let throttled = async |from: &From, xff: &[&str]| {
        let mut statuses = Vec::new();
        for (i, x) in xff.iter().enumerate() {
            let login = format!("user{i}");
            statuses.push(from.login(edge.addr, &login, Some(x)).await.0);
        }
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count()
    };
    // Untrusted: a new X-Forwarded-For each time changes nothing; 2 of 4 pass.
    let untrusted = From::at([127, 0, 5, 1]);
    let spoofed = [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
    ];
    assert_eq!(throttled(&untrusted, &spoofed).await, 2);
    // Trusted proxy: each forwarded client has its own bucket, the proxy none.
    let proxy = From::at([127, 0, 4, 1]);
    assert_eq!(throttled(&proxy, &spoofed).await, 0);
    // The right-most untrusted address counts, not what the client prepended.
    let chain = [
        "1.1.1.1, 203.0.113.7, 127.0.4.9",
        "2.2.2.2, 203.0.113.7",
        "3.3.3.3, 203.0.113.7",
    ];
    assert_eq!(throttled(&proxy, &chain).await, 1);
    edge.stop().await;
}
