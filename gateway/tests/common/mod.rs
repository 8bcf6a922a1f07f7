//! The test system: real user, catalog and inventory servers on 127.0.0.1:0 with fresh SQLite
//! files, order/payment/notification pointed at closed ports (down), and the gateway in front;
//! plus a small HTTP client and token minting.
#![allow(dead_code, clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use polyshop_platform::{
    config::Settings,
    shutdown,
    testing::{self, eventually},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub const ADMIN_PASSWORD: &str = "admin password 123";
pub const PASSWORD: &str = "correct horse battery";

/// A running system.
pub struct System {
    pub gateway: SocketAddr,
    pub settings: Settings,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: shutdown::Trigger,
    tasks: Vec<JoinHandle<()>>,
    catalog: Catalog,
    _dir: tempfile::TempDir,
}

/// The catalog server, which a test can restart.
struct Catalog {
    addr: SocketAddr,
    stop: shutdown::Trigger,
    task: JoinHandle<()>,
}

fn serve_catalog(settings: &Settings, listener: tokio::net::TcpListener) -> Catalog {
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = shutdown::channel();
    let s = settings.clone();
    let task = tokio::spawn(async move {
        polyshop_catalog::serve(s, listener, stopped.wait())
            .await
            .expect("catalog runs");
    });
    Catalog { addr, stop, task }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// An address where nothing listens, now or later. A port freed by dropping a listener goes
/// back to the ephemeral range, where a test running in parallel can get it for one of its
/// servers (the "down" upstream then answers as someone else's service); port 1 is outside
/// that range and never handed out by a bind to port 0.
fn closed_port() -> String {
    "http://127.0.0.1:1".to_owned()
}

async fn wait_for(addr: SocketAddr) {
    let channel = testing::channel(addr);
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    eventually(&format!("{addr} to report SERVING"), async || {
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok_and(|r| r.get_ref().status == 1)
    })
    .await;
}

/// Starts the system; `configure` adjusts the settings (gateway limits) first.
pub async fn start(configure: impl FnOnce(&mut Settings)) -> System {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = testing::settings(dir.path());
    settings.user.admin_password = Some(ADMIN_PASSWORD.into());
    settings.gateway.rate_per_sec = 10_000;
    settings.gateway.rate_burst = 10_000;
    settings.gateway.auth_rate_per_sec = 10_000;
    settings.gateway.auth_rate_burst = 10_000;
    let (user_l, user) = testing::listener().await;
    let (catalog_l, catalog) = testing::listener().await;
    let (inventory_l, inventory) = testing::listener().await;
    let (gateway_l, gateway) = testing::listener().await;
    settings.user.url = Some(format!("http://{user}"));
    settings.catalog.url = Some(format!("http://{catalog}"));
    settings.inventory.url = Some(format!("http://{inventory}"));
    settings.order.url = Some(closed_port());
    settings.payment.url = Some(closed_port());
    settings.notification.url = Some(closed_port());
    configure(&mut settings);

    let (stop, stopped) = shutdown::channel();
    let mut tasks = Vec::new();
    let s = settings.clone();
    let w = stopped.clone();
    tasks.push(tokio::spawn(async move {
        polyshop_user::serve(s, user_l, w.wait())
            .await
            .expect("user runs");
    }));
    wait_for(user).await;
    let catalog_server = serve_catalog(&settings, catalog_l);
    let s = settings.clone();
    let w = stopped.clone();
    tasks.push(tokio::spawn(async move {
        polyshop_inventory::serve(s, inventory_l, w.wait())
            .await
            .expect("inventory runs");
    }));
    wait_for(catalog).await;
    wait_for(inventory).await;
    let s = settings.clone();
    let w = stopped.clone();
    tasks.push(tokio::spawn(async move {
        polyshop_gateway::serve(s, gateway_l, w.wait())
            .await
            .expect("gateway runs");
    }));
    let client = Client::builder(TokioExecutor::new()).build_http();
    let system = System {
        gateway,
        settings,
        client,
        stop,
        tasks,
        catalog: catalog_server,
        _dir: dir,
    };
    // An edge `configure` gave a certificate speaks only TLS, which this client does not:
    // such a test waits for the edge itself (tests/tls.rs).
    if system.settings.gateway.tls_cert_path.is_none() {
        eventually("the gateway to answer /healthz", async || {
            system.get("/healthz", None).await.status == StatusCode::OK
        })
        .await;
    }
    system
}

impl System {
    pub async fn stop(self) {
        self.stop.fire();
        self.catalog.stop.fire();
        for task in self.tasks.into_iter().chain([self.catalog.task]) {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Stops the catalog server (gracefully: in-flight calls finish, connections close) and
    /// starts a new one on the same address and database.
    pub async fn restart_catalog(&mut self) {
        self.catalog.stop.fire();
        let task = std::mem::replace(&mut self.catalog.task, tokio::spawn(async {}));
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("catalog stops")
            .expect("catalog stopped cleanly");
        let listener = tokio::net::TcpListener::bind(self.catalog.addr)
            .await
            .expect("the catalog's address is free again");
        self.catalog = serve_catalog(&self.settings, listener);
        wait_for(self.catalog.addr).await;
    }

    /// Sends a request; `body` is sent as-is.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.gateway));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = self
            .client
            .request(request.body(Full::new(body)).unwrap())
            .await
            .expect("gateway answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Sends a request; returns the status and the raw body.
    pub async fn raw_bytes(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.gateway));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = self
            .client
            .request(request.body(Full::new(body)).unwrap())
            .await
            .expect("gateway answers");
        let status = response.status();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    /// A JSON request with an optional bearer token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        self.raw(method, path, &headers, body).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Registers `name` through the edge and logs in; returns (user id, token).
    pub async fn sign_up(&self, name: &str) -> (String, String) {
        let r = self
            .post(
                "/v1/users",
                None,
                json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "register: {:?}", r.body);
        let id = r.body["user"]["userId"].as_str().unwrap().to_owned();
        (id, self.login(name, PASSWORD).await)
    }

    pub async fn login(&self, login: &str, password: &str) -> String {
        let r = self
            .post(
                "/v1/auth/login",
                None,
                json!({"login": login, "password": password}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "login: {:?}", r.body);
        r.body["accessToken"].as_str().unwrap().to_owned()
    }

    pub async fn admin_token(&self) -> String {
        let name = self.settings.user.admin_username.clone();
        self.login(&name, ADMIN_PASSWORD).await
    }

    /// Creates a product as admin; returns its id.
    pub async fn create_product(&self, admin: &str, name: &str, amount: i64) -> String {
        let r = self
            .post(
                "/v1/products",
                Some(admin),
                json!({
                    "requestId": polyshop_platform::new_id(),
                    "name": name,
                    "description": format!("{name}, a fine thing"),
                    "category": "kitchen",
                    "price": {"amountMinor": amount.to_string(), "currencyCode": "EUR"},
                    "active": true,
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "create product: {:?}", r.body);
        r.body["product"]["productId"].as_str().unwrap().to_owned()
    }
}

/// The error body's `status` name.
pub fn status_name(answer: &Answer) -> &str {
    answer.body["error"]["status"].as_str().unwrap_or("")
}
