//! The one way the payment test suites start a server: `serve_with_auth` on 127.0.0.1:0 with
//! a fresh data dir, its own nats-server, and a test token issuer the server trusts; plus
//! request builders. What the server published is read with `polyshop_platform::testing`'s
//! stream helpers.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::{net::SocketAddr, path::Path, time::Duration};

use polyshop::{
    api::v1::Money,
    payment::v1::{self as pb, payment_service_client::PaymentServiceClient},
};
use polyshop_payment::SERVICE_NAME;
use polyshop_platform::{
    config::Settings,
    shutdown,
    testing::{self, NatsServer, TestTokens, bearer, eventually},
};
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

/// The caller Charge and Refund expect.
pub const ORDER_SERVICE: &str = "polyshop-order";

/// Settings on `dir` publishing to `nats`.
pub fn settings(dir: &Path, nats: &NatsServer) -> Settings {
    let mut s = testing::settings(dir);
    s.nats.url = Some(nats.url());
    s
}

/// A running payment server and tokens for every kind of caller.
pub struct Running {
    pub addr: SocketAddr,
    pub tokens: TestTokens,
    stop: shutdown::Trigger,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn client(&self) -> PaymentServiceClient<Channel> {
        PaymentServiceClient::new(testing::channel(self.addr))
    }

    /// `n` clients, each on its own connection that has already answered a call, so that
    /// calls sent on them together reach the server together.
    pub async fn connected_clients(&self, n: usize) -> Vec<PaymentServiceClient<Channel>> {
        let token = self.service();
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let mut client = self.client();
            let request = pb::GetPaymentRequest {
                payment_id: "warm-up".into(),
            };
            let _ = client.get_payment(bearer(request, &token)).await;
            clients.push(client);
        }
        clients
    }

    /// A token of the order service, the one caller of Charge and Refund.
    pub fn service(&self) -> String {
        self.tokens.service(ORDER_SERVICE, SERVICE_NAME)
    }

    /// An admin user's token (a service may call only what the contract lists it for).
    pub fn admin(&self) -> String {
        self.tokens.admin("ops")
    }

    pub async fn stop(self) {
        self.stop.fire();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }

    pub async fn charge(&self, request: pb::ChargeRequest) -> Result<pb::Payment, Status> {
        let response = self
            .client()
            .charge(bearer(request, &self.service()))
            .await?;
        Ok(response.into_inner().payment.expect("payment"))
    }

    pub async fn refund(&self, key: &str, payment_id: &str) -> Result<pb::Payment, Status> {
        let request = pb::RefundRequest {
            idempotency_key: key.into(),
            payment_id: payment_id.into(),
            reason: "order rejected".into(),
        };
        let response = self
            .client()
            .refund(bearer(request, &self.service()))
            .await?;
        Ok(response.into_inner().payment.expect("payment"))
    }

    pub async fn get(&self, payment_id: &str, token: &str) -> Result<pb::Payment, Status> {
        let request = pb::GetPaymentRequest {
            payment_id: payment_id.into(),
        };
        let response = self.client().get_payment(bearer(request, token)).await?;
        Ok(response.into_inner().payment.expect("payment"))
    }

    pub async fn invoice(&self, payment_id: &str, token: &str) -> Result<pb::Invoice, Status> {
        let request = pb::GetInvoiceRequest {
            payment_id: payment_id.into(),
        };
        let response = self.client().get_invoice(bearer(request, token)).await?;
        Ok(response.into_inner().invoice.expect("invoice"))
    }

    /// Every payment `token` may see, optionally of one order, all pages, newest first.
    pub async fn list(&self, order_id: &str, token: &str) -> Vec<pb::Payment> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::ListPaymentsRequest {
                page_size: 2,
                page_token,
                order_id: order_id.into(),
            };
            let page = self
                .client()
                .list_payments(bearer(request, token))
                .await
                .expect("list")
                .into_inner();
            all.extend(page.payments);
            if page.next_page_token.is_empty() {
                return all;
            }
            page_token = page.next_page_token;
        }
    }
}

/// Starts the service with `settings` and waits until it answers.
pub async fn start(settings: Settings) -> Running {
    let tokens = TestTokens::new(&settings);
    let auth = tokens.authenticator(SERVICE_NAME);
    let (listener, addr) = testing::listener().await;
    let (stop, stopped) = shutdown::channel();
    let task = tokio::spawn(async move {
        polyshop_payment::serve_with_auth(settings, listener, auth, stopped.wait())
            .await
            .expect("payment service runs");
    });
    let running = Running {
        addr,
        tokens,
        stop,
        task,
    };
    // The server answers once migrations ran; wait for that.
    let token = running.tokens.admin("ops");
    eventually(
        "the payment server answers",
        async || matches!(running.get("ping", &token).await, Err(e) if e.code() == Code::NotFound),
    )
    .await;
    running
}

pub fn usd(amount_minor: i64) -> Option<Money> {
    Some(Money {
        amount_minor,
        currency_code: "USD".into(),
    })
}

/// A charge of `order_id` for `user_id`: two mugs at 10.00 and a spoon at 5.00.
pub fn charge_request(key: &str, order_id: &str, user_id: &str, token: &str) -> pb::ChargeRequest {
    let line = |description: &str, quantity, unit| pb::LineItem {
        description: description.into(),
        quantity,
        unit_price: usd(unit),
    };
    pb::ChargeRequest {
        idempotency_key: key.into(),
        order_id: order_id.into(),
        user_id: user_id.into(),
        amount: usd(2500),
        payment_method_token: token.into(),
        line_items: vec![line("Mug", 2, 1000), line("Spoon", 1, 500)],
    }
}

/// `ErrorInfo.reason` of a status, or empty.
pub fn reason(err: &Status) -> String {
    err.get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// A server with its own nats-server and database (SQLite in a temp dir, or PostgreSQL).
pub struct Env {
    pub nats: NatsServer,
    pub settings: Settings,
    pub server: Running,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn with(configure: impl FnOnce(&mut Settings)) -> Self {
        let nats = NatsServer::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = settings(dir.path(), &nats);
        configure(&mut settings);
        let server = start(settings.clone()).await;
        Self {
            nats,
            settings,
            server,
            _dir: dir,
        }
    }

    /// On a fresh SQLite file.
    pub async fn sqlite() -> Self {
        Self::with(|_| {}).await
    }

    /// On a fresh PostgreSQL database, when `POLYSHOP_TEST_POSTGRES_URL` is set.
    pub async fn postgres(test: &str) -> Option<Self> {
        let url = testing::postgres_database(test).await?;
        Some(Self::with(|s| s.payment.database_url = Some(url.into())).await)
    }

    /// Stops the server and starts it again on the same database and NATS.
    pub async fn restart(self) -> Self {
        let Self {
            nats,
            settings,
            server,
            _dir,
        } = self;
        server.stop().await;
        let server = start(settings.clone()).await;
        Self {
            nats,
            settings,
            server,
            _dir,
        }
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}
