//! Every Polyshop service in-process on 127.0.0.1:0 ports with its own nats-server, for the
//! order service's end-to-end tests.

#![allow(dead_code)]

use std::{collections::HashMap, future::Future, net::SocketAddr, pin::Pin, time::Duration};

use polyshop::{
    api::v1::Money,
    catalog::v1::{CreateProductRequest, catalog_service_client::CatalogServiceClient},
    inventory::v1::{
        GetStockRequest, SetStockRequest, StockLevel,
        inventory_service_client::InventoryServiceClient,
    },
    order::v1::{
        CreateOrderItem, CreateOrderRequest, Order, ShippingAddress,
        order_service_client::OrderServiceClient,
    },
    payment::v1::{ListPaymentsRequest, Payment, payment_service_client::PaymentServiceClient},
    user::v1::{LoginRequest, RegisterRequest, user_service_client::UserServiceClient},
};
use polyshop_platform::{
    config::Settings,
    server::StartError,
    shutdown,
    testing::{self, EVENTUALLY, NatsServer, bearer, eventually_some},
};
use tokio::net::TcpListener;
use tonic::transport::Channel;

pub const PASSWORD: &str = "correct horse battery";
pub const ADMIN_PASSWORD: &str = "admin password 123";

type Serve = fn(
    Settings,
    TcpListener,
    Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Pin<Box<dyn Future<Output = Result<(), StartError>> + Send>>;

fn serve_fn(name: &str) -> Serve {
    match name {
        "user" => |s, l, f| Box::pin(polyshop_user::serve(s, l, f)),
        "catalog" => |s, l, f| Box::pin(polyshop_catalog::serve(s, l, f)),
        "inventory" => |s, l, f| Box::pin(polyshop_inventory::serve(s, l, f)),
        "payment" => |s, l, f| Box::pin(polyshop_payment::serve(s, l, f)),
        "notification" => |s, l, f| Box::pin(polyshop_notification::serve(s, l, f)),
        "order" => |s, l, f| Box::pin(polyshop_order::serve(s, l, f)),
        other => panic!("no service {other}"),
    }
}

struct Running {
    stop: shutdown::Trigger,
    task: tokio::task::JoinHandle<()>,
}

/// The whole system.
pub struct System {
    pub dir: tempfile::TempDir,
    pub nats: NatsServer,
    pub settings: Settings,
    addrs: HashMap<&'static str, SocketAddr>,
    running: HashMap<&'static str, Running>,
}

pub const SERVICES: [&str; 6] = [
    "user",
    "catalog",
    "inventory",
    "payment",
    "notification",
    "order",
];

impl System {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Settings)) -> Self {
        let nats = NatsServer::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = testing::settings(dir.path());
        settings.nats.url = Some(nats.url());
        settings.user.admin_password = Some(ADMIN_PASSWORD.into());
        settings.order.breaker_cool_down_ms = 500;
        settings.order.resume_interval_ms = 300;
        settings.events.ack_wait_secs = 5;
        let mut addrs = HashMap::new();
        let mut listeners = Vec::new();
        for name in SERVICES {
            let (listener, addr) = testing::listener().await;
            addrs.insert(name, addr);
            listeners.push((name, listener));
            let url = Some(format!("http://{addr}"));
            match name {
                "user" => settings.user.url = url,
                "catalog" => settings.catalog.url = url,
                "inventory" => settings.inventory.url = url,
                "payment" => settings.payment.url = url,
                "notification" => settings.notification.url = url,
                _ => settings.order.url = url,
            }
        }
        tune(&mut settings);
        let mut system = Self {
            dir,
            nats,
            settings,
            addrs,
            running: HashMap::new(),
        };
        for (name, listener) in listeners {
            system.run(name, listener);
        }
        for name in SERVICES {
            system.wait_serving(name).await;
        }
        system
    }

    fn run(&mut self, name: &'static str, listener: TcpListener) {
        let (stop, stopped) = shutdown::channel();
        let settings = self.settings.clone();
        let serve = serve_fn(name);
        let task = tokio::spawn(async move {
            serve(settings, listener, Box::pin(stopped.wait()))
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        });
        self.running.insert(name, Running { stop, task });
    }

    async fn wait_serving(&self, name: &str) {
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        for _ in 0..200 {
            let ok = HealthClient::new(self.channel(name))
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .is_ok_and(|r| r.into_inner().status == 1);
            if ok {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name} did not become SERVING");
    }

    pub async fn stop(&mut self, name: &'static str) {
        if let Some(r) = self.running.remove(name) {
            r.stop.fire();
            let _ = tokio::time::timeout(Duration::from_secs(10), r.task).await;
        }
    }

    pub async fn restart(&mut self, name: &'static str) {
        let listener = TcpListener::bind(self.addrs[name]).await.expect("rebind");
        self.run(name, listener);
        self.wait_serving(name).await;
    }

    pub async fn shutdown(mut self) {
        for name in SERVICES.iter().rev() {
            self.stop(name).await;
        }
    }

    pub fn channel(&self, name: &str) -> Channel {
        testing::channel(self.addrs[name])
    }

    /// The address `name` listens on (gRPC, and HTTP/1.1 for `/metrics` and the probes).
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs[name]
    }

    /// gRPC health of `name` under health name `service`: 1 SERVING, 2 NOT_SERVING, 0 when it
    /// does not answer.
    pub async fn health(&self, name: &str, service: &str) -> i32 {
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        HealthClient::new(self.channel(name))
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_or(0, |r| r.into_inner().status)
    }

    /// `GET path` on `name`'s port over HTTP/1.1: status code and JSON body.
    pub async fn http_get(&self, name: &str, path: &str) -> (u16, serde_json::Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.addrs[name];
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").expect("a response");
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        // axum answers JSON with a content-length, never chunked.
        (
            code,
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    }

    pub fn orders(&self) -> OrderServiceClient<Channel> {
        OrderServiceClient::new(self.channel("order"))
    }

    /// Registers a customer; returns (user id, token).
    pub async fn customer(&self, name: &str) -> (String, String) {
        let mut users = UserServiceClient::new(self.channel("user"));
        let user = users
            .register(RegisterRequest {
                username: name.into(),
                email: format!("{name}@example.com"),
                password: PASSWORD.into(),
                display_name: String::new(),
            })
            .await
            .expect("register")
            .into_inner()
            .user
            .expect("user");
        let token = users
            .login(LoginRequest {
                login: name.into(),
                password: PASSWORD.into(),
            })
            .await
            .expect("login")
            .into_inner()
            .access_token;
        (user.user_id, token)
    }

    pub async fn admin(&self) -> String {
        UserServiceClient::new(self.channel("user"))
            .login(LoginRequest {
                login: "admin".into(),
                password: ADMIN_PASSWORD.into(),
            })
            .await
            .expect("admin login")
            .into_inner()
            .access_token
    }

    /// A product priced `cents` USD with `stock` units.
    pub async fn product(&self, admin: &str, name: &str, cents: i64, stock: i32) -> String {
        let product = CatalogServiceClient::new(self.channel("catalog"))
            .create_product(bearer(
                CreateProductRequest {
                    request_id: String::new(),
                    name: name.into(),
                    description: String::new(),
                    category: "test".into(),
                    price: Some(Money {
                        amount_minor: cents,
                        currency_code: "USD".into(),
                    }),
                    active: true,
                },
                admin,
            ))
            .await
            .expect("create product")
            .into_inner()
            .product
            .expect("product");
        // Inventory counts only products it knows: it learns of this one from product.created,
        // a moment after CreateProduct. Until then SetStock answers NOT_FOUND; wait for it.
        let mut inventory = InventoryServiceClient::new(self.channel("inventory"));
        let what = format!("inventory knows product {}", product.product_id);
        eventually_some(&what, EVENTUALLY, async || {
            let request = SetStockRequest {
                product_id: product.product_id.clone(),
                quantity_on_hand: stock,
            };
            match inventory.set_stock(bearer(request, admin)).await {
                Ok(_) => Some(()),
                Err(e) if e.code() == tonic::Code::NotFound => None,
                Err(e) => panic!("set stock: {e}"),
            }
        })
        .await;
        product.product_id
    }

    pub async fn stock(&self, product_id: &str) -> StockLevel {
        InventoryServiceClient::new(self.channel("inventory"))
            .get_stock(GetStockRequest {
                product_id: product_id.into(),
            })
            .await
            .expect("stock")
            .into_inner()
            .stock
            .expect("level")
    }

    pub async fn payments(&self, admin: &str, order_id: &str) -> Vec<Payment> {
        PaymentServiceClient::new(self.channel("payment"))
            .list_payments(bearer(
                ListPaymentsRequest {
                    page_size: 100,
                    page_token: String::new(),
                    order_id: order_id.into(),
                },
                admin,
            ))
            .await
            .expect("payments")
            .into_inner()
            .payments
    }

    pub async fn place(
        &self,
        token: &str,
        key: &str,
        items: &[(&str, i32)],
        card: &str,
    ) -> Result<Order, tonic::Status> {
        self.orders()
            .create_order(bearer(request(key, items, card), token))
            .await
            .map(|r| r.into_inner().order.expect("order"))
    }
}

pub fn request(key: &str, items: &[(&str, i32)], card: &str) -> CreateOrderRequest {
    CreateOrderRequest {
        idempotency_key: key.into(),
        items: items
            .iter()
            .map(|(p, q)| CreateOrderItem {
                product_id: (*p).into(),
                quantity: *q,
            })
            .collect(),
        shipping_address: Some(ShippingAddress {
            recipient: "Jane Doe".into(),
            line1: "Invalidenstr. 1".into(),
            line2: String::new(),
            city: "Berlin".into(),
            region: String::new(),
            postal_code: "10115".into(),
            country_code: "DE".into(),
        }),
        payment_method_token: card.into(),
    }
}
