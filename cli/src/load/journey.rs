//! The shopper journeys and the calls each makes through the edge.

use std::{
    future::Future,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::Instant,
};

use polyshop::{
    catalog::v1::{
        GetProductRequest, ListProductsRequest, catalog_service_client::CatalogServiceClient,
    },
    notification::v1::{
        ListNotificationsRequest, notification_service_client::NotificationServiceClient,
    },
    order::v1::{
        CreateOrderItem, CreateOrderRequest, ListOrdersRequest, ShippingAddress,
        order_service_client::OrderServiceClient,
    },
    user::v1::{LoginRequest, RegisterRequest, user_service_client::UserServiceClient},
};
use tonic::transport::Channel;

use super::stats::Recorder;

/// The password of every account a load run makes.
pub const PASSWORD: &str = "load-generator-password";

/// One kind of shopper visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Journey {
    Browse,
    Search,
    Product,
    Signup,
    Login,
    Checkout,
    Orders,
    Notifications,
}

impl Journey {
    /// Every journey, in report order.
    pub const ALL: [Self; 8] = [
        Self::Browse,
        Self::Search,
        Self::Product,
        Self::Signup,
        Self::Login,
        Self::Checkout,
        Self::Orders,
        Self::Notifications,
    ];

    /// The name used in `--mix` and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Browse => "browse",
            Self::Search => "search",
            Self::Product => "product",
            Self::Signup => "signup",
            Self::Login => "login",
            Self::Checkout => "checkout",
            Self::Orders => "orders",
            Self::Notifications => "notifications",
        }
    }
}

/// A logged-in shopper made before the run.
#[derive(Debug)]
pub struct Account {
    pub login: String,
    pub token: String,
}

/// What every journey needs: connections to the edge, the catalog and the shoppers.
pub struct Shop {
    pub channels: Vec<Channel>,
    pub products: Vec<String>,
    pub terms: Vec<String>,
    pub accounts: Vec<Account>,
    /// Makes usernames and idempotency keys unique across runs against one system.
    pub run_id: String,
    next_channel: AtomicUsize,
    next_id: AtomicU64,
}

impl Shop {
    /// A shop without catalog or accounts yet.
    pub fn new(channels: Vec<Channel>, run_id: String) -> Self {
        Self {
            channels,
            products: Vec::new(),
            terms: Vec::new(),
            accounts: Vec::new(),
            run_id,
            next_channel: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
        }
    }

    /// The connections take turns, so the load spreads over them.
    pub fn channel(&self) -> Channel {
        let i = self.next_channel.fetch_add(1, Ordering::Relaxed);
        self.channels[i % self.channels.len()].clone()
    }

    /// A name no other call of this run has used.
    pub fn unique(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{}-{n}", self.run_id)
    }

    /// Registers a new shopper (Register + Login): its account, or `None` if a call failed.
    pub async fn sign_up(&self, rec: &Recorder, journey: Journey) -> Option<Account> {
        let username = self.unique("load");
        let register = RegisterRequest {
            username: username.clone(),
            email: format!("{username}@example.com"),
            password: PASSWORD.into(),
            display_name: String::new(),
        };
        let mut users = UserServiceClient::new(self.channel());
        step(rec, journey, "Register", users.register(register)).await?;
        self.log_in(rec, journey, &username).await
    }

    /// Logs `login` in: its account, or `None` if the call failed.
    pub async fn log_in(&self, rec: &Recorder, journey: Journey, login: &str) -> Option<Account> {
        let request = LoginRequest {
            login: login.into(),
            password: PASSWORD.into(),
        };
        let mut users = UserServiceClient::new(self.channel());
        let reply = step(rec, journey, "Login", users.login(request)).await?;
        Some(Account {
            login: login.into(),
            token: reply.access_token,
        })
    }

    /// Runs one `journey`, recording each call; whether every call succeeded.
    pub async fn run(&self, rec: &Recorder, journey: Journey) -> bool {
        // Choices are made before the first await: the thread's RNG cannot cross one.
        let product = pick(&self.products).cloned().unwrap_or_default();
        let term = pick(&self.terms).cloned().unwrap_or_default();
        let Some(account) = pick(&self.accounts) else {
            return false;
        };
        let mut catalog = CatalogServiceClient::new(self.channel());
        let list = |query: String| ListProductsRequest {
            page_size: 20,
            query,
            ..Default::default()
        };
        match journey {
            Journey::Browse => step(
                rec,
                journey,
                "ListProducts",
                catalog.list_products(list(String::new())),
            )
            .await
            .is_some(),
            Journey::Search => step(
                rec,
                journey,
                "ListProducts",
                catalog.list_products(list(term)),
            )
            .await
            .is_some(),
            Journey::Product => self.product_page(rec, journey, product).await,
            Journey::Signup => self.sign_up(rec, journey).await.is_some(),
            Journey::Login => self.log_in(rec, journey, &account.login).await.is_some(),
            Journey::Checkout => {
                self.product_page(rec, journey, product.clone()).await
                    && self.check_out(rec, account, product).await
            }
            Journey::Orders => {
                let mut orders = OrderServiceClient::new(self.channel());
                let request = authed(ListOrdersRequest::default(), &account.token);
                step(rec, journey, "ListOrders", orders.list_orders(request))
                    .await
                    .is_some()
            }
            Journey::Notifications => {
                let mut inbox = NotificationServiceClient::new(self.channel());
                let request = authed(ListNotificationsRequest::default(), &account.token);
                step(
                    rec,
                    journey,
                    "ListNotifications",
                    inbox.list_notifications(request),
                )
                .await
                .is_some()
            }
        }
    }

    async fn product_page(&self, rec: &Recorder, journey: Journey, product_id: String) -> bool {
        let mut catalog = CatalogServiceClient::new(self.channel());
        let request = GetProductRequest { product_id };
        step(rec, journey, "GetProduct", catalog.get_product(request))
            .await
            .is_some()
    }

    async fn check_out(&self, rec: &Recorder, account: &Account, product_id: String) -> bool {
        let request = CreateOrderRequest {
            idempotency_key: self.unique("order"),
            items: vec![CreateOrderItem {
                product_id,
                quantity: 1,
            }],
            shipping_address: Some(ShippingAddress {
                recipient: "Load Tester".into(),
                line1: "Main St 1".into(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country_code: "DE".into(),
                ..Default::default()
            }),
            payment_method_token: "tok_visa".into(),
        };
        let mut orders = OrderServiceClient::new(self.channel());
        let call = orders.create_order(authed(request, &account.token));
        let created = step(rec, Journey::Checkout, "CreateOrder", call)
            .await
            .is_some();
        if created {
            rec.order_created();
        }
        created
    }
}

/// A random element of `items`.
fn pick<T>(items: &[T]) -> Option<&T> {
    use rand::Rng;
    (!items.is_empty()).then(|| &items[rand::thread_rng().gen_range(0..items.len())])
}

/// `message` with `authorization: Bearer <token>`.
fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Awaits one call, recording its latency and outcome under `journey`/`name`.
async fn step<T>(
    rec: &Recorder,
    journey: Journey,
    name: &'static str,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Option<T> {
    let started = Instant::now();
    let result = call.await;
    rec.request(
        journey,
        name,
        started,
        result.as_ref().err().map(tonic::Status::code),
    );
    result.ok().map(tonic::Response::into_inner)
}
