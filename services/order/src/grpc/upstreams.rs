//! The saga's participants' clients: user, catalog, inventory and payment, each call with a
//! service token, a deadline, retries only where the contract marks the method idempotent, a
//! circuit breaker and a bulkhead per upstream; each upstream balances over its instances as
//! discovery finds them (the configured URL in `static` mode). `participants.rs` turns their
//! answers into domain outcomes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use polyshop::{
    catalog::v1::{BatchGetProductsRequest, Product, catalog_service_client::CatalogServiceClient},
    inventory::v1::{
        ConfirmReservationRequest, ReleaseReservationRequest, ReservationItem, ReserveStockRequest,
        inventory_service_client::InventoryServiceClient,
    },
    payment::v1::{
        ChargeRequest, ListPaymentsRequest, Payment, RefundRequest,
        payment_service_client::PaymentServiceClient,
    },
    user::v1::{GetUserRequest, User, user_service_client::UserServiceClient},
};
use polyshop_platform::discovery::Balanced;
use polyshop_platform::{
    auth::{ServiceAuth, ServiceTokens},
    config::{OrderSettings, Settings},
    events::EventBus,
    resilience::{self, Bulkhead, CallError, CircuitBreaker, RetryPolicy},
    runtime_config::{self, RuntimeConfig, Value},
    server::StartError,
};
use tonic::{Status, service::interceptor::InterceptedService};

type Authed = InterceptedService<Balanced, ServiceAuth>;

/// One participant: its client, breaker and bulkhead.
#[derive(Debug)]
struct Upstream<C> {
    client: C,
    breaker: CircuitBreaker,
    bulkhead: Bulkhead,
}

impl<C> Upstream<C> {
    /// `client` of participant `name`, protected as `settings` say.
    fn new(name: &str, client: C, settings: &OrderSettings, timeout: Duration) -> Self {
        Self {
            client,
            breaker: CircuitBreaker::new(
                name,
                settings.breaker_failures,
                Duration::from_millis(settings.breaker_cool_down_ms),
            ),
            bulkhead: Bulkhead::new(
                name,
                settings.bulkhead_max_concurrent,
                settings.bulkhead_max_waiting,
                timeout,
            ),
        }
    }
}

/// Clients of every participant, with their protections.
#[derive(Debug)]
pub struct GrpcParticipants {
    user: Upstream<UserServiceClient<Authed>>,
    catalog: Upstream<CatalogServiceClient<Authed>>,
    inventory: Upstream<InventoryServiceClient<Authed>>,
    payment: Upstream<PaymentServiceClient<Authed>>,
    policy: RetryPolicy,
    /// Attempts per idempotent call now: `policy`'s, or the runtime `call_attempts`.
    attempts: AtomicU32,
    /// The participants' channels by context, for the full health check.
    channels: Vec<(&'static str, Balanced)>,
}

/// A client of participant `service` over its instances.
fn channel(
    bus: &EventBus,
    service: &str,
    url: &str,
    timeout: Duration,
) -> Result<Balanced, StartError> {
    bus.channel_to(service, url, move |e| {
        e.connect_timeout(Duration::from_millis(500).min(timeout))
            .timeout(timeout)
    })
    .map_err(|e| StartError::Other(format!("bad upstream URL {url}: {e}")))
}

macro_rules! call {
    ($self:ident, $upstream:ident, $path:literal, $method:ident, $request:expr) => {{
        let request = $request;
        // The slot is held across retries: they are the same logical call.
        let _slot = $self
            .$upstream
            .bulkhead
            .enter()
            .await
            .map_err(CallError::NotSent)?;
        let policy = $self.policy();
        resilience::call(&$self.$upstream.breaker, &policy, $path, || {
            let mut client = $self.$upstream.client.clone();
            let request = request.clone();
            async move {
                client
                    .$method(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await
    }};
}

impl GrpcParticipants {
    /// Lazily connected clients of the participants named in `settings`.
    ///
    /// # Errors
    /// When a URL is malformed.
    pub fn new(
        settings: &Settings,
        tokens: &Arc<ServiceTokens>,
        bus: &EventBus,
    ) -> Result<Self, StartError> {
        let o = &settings.order;
        let timeout = Duration::from_millis(o.call_timeout_ms);
        let auth = |audience: &str| ServiceAuth::new(tokens.clone(), audience);
        let mut channels = Vec::new();
        let mut upstream = |name: &'static str, url: &str| {
            let balanced = channel(bus, name, url, timeout)?;
            channels.push((name, balanced.clone()));
            Ok::<_, StartError>(balanced)
        };
        Ok(Self {
            user: Upstream::new(
                "user",
                UserServiceClient::with_interceptor(
                    upstream("user", &settings.user.url())?,
                    auth("polyshop-user"),
                ),
                o,
                timeout,
            ),
            catalog: Upstream::new(
                "catalog",
                CatalogServiceClient::with_interceptor(
                    upstream("catalog", &settings.catalog.url())?,
                    auth("polyshop-catalog"),
                ),
                o,
                timeout,
            ),
            inventory: Upstream::new(
                "inventory",
                InventoryServiceClient::with_interceptor(
                    upstream("inventory", &settings.inventory.service().url())?,
                    auth("polyshop-inventory"),
                ),
                o,
                timeout,
            ),
            payment: Upstream::new(
                "payment",
                PaymentServiceClient::with_interceptor(
                    upstream("payment", &settings.payment.url())?,
                    auth("polyshop-payment"),
                ),
                o,
                timeout,
            ),
            policy: RetryPolicy {
                max_attempts: o.call_attempts.max(1),
                attempt_timeout: timeout,
                ..RetryPolicy::default()
            },
            attempts: AtomicU32::new(o.call_attempts.max(1)),
            channels,
        })
    }

    /// The retry policy of a call starting now.
    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.attempts.load(Ordering::Relaxed),
            ..self.policy
        }
    }

    /// Applies the runtime settings the participants read (their circuits' thresholds and the
    /// retry budget) as they change, without a restart (decision 0021).
    pub fn follow(self: &Arc<Self>, runtime: &RuntimeConfig) {
        for setting in ["breaker_failures", "breaker_cool_down_ms", "call_attempts"] {
            let participants = Arc::downgrade(self);
            runtime.on(
                setting,
                Arc::new(move |value| match participants.upgrade() {
                    Some(p) => p.apply(setting, value),
                    None => Ok(()),
                }),
            );
        }
    }

    fn apply(&self, setting: &str, value: Option<&Value>) -> Result<(), String> {
        if setting == "call_attempts" {
            let attempts = match value {
                None => self.policy.max_attempts,
                Some(Value::Count(n)) => (*n).max(1),
                Some(other) => return Err(format!("{other} is no call_attempts")),
            };
            self.attempts.store(attempts, Ordering::Relaxed);
            return Ok(());
        }
        for breaker in [
            &self.user.breaker,
            &self.catalog.breaker,
            &self.inventory.breaker,
            &self.payment.breaker,
        ] {
            runtime_config::tune_breaker(breaker, setting, value)?;
        }
        Ok(())
    }

    /// The participants' channels by context (`user`, `catalog`, `inventory`, `payment`).
    pub fn channels(&self) -> &[(&'static str, Balanced)] {
        &self.channels
    }

    pub(super) async fn user(&self, user_id: &str) -> Result<User, CallError> {
        let request = GetUserRequest {
            user_id: user_id.to_owned(),
        };
        let response = call!(
            self,
            user,
            "/polyshop.user.v1.UserService/GetUser",
            get_user,
            request
        )?;
        response
            .user
            .ok_or_else(|| CallError::Failed(Status::internal("user service returned no user")))
    }

    pub(super) async fn batch_products(&self, ids: Vec<String>) -> Result<Vec<Product>, CallError> {
        let request = BatchGetProductsRequest { product_ids: ids };
        let response = call!(
            self,
            catalog,
            "/polyshop.catalog.v1.CatalogService/BatchGetProducts",
            batch_get_products,
            request
        )?;
        Ok(response.products)
    }

    pub(super) async fn reserve(
        &self,
        reservation_id: &str,
        items: Vec<ReservationItem>,
    ) -> Result<(), CallError> {
        let request = ReserveStockRequest {
            reservation_id: reservation_id.to_owned(),
            items,
        };
        call!(
            self,
            inventory,
            "/polyshop.inventory.v1.InventoryService/ReserveStock",
            reserve_stock,
            request
        )
        .map(drop)
    }

    pub(super) async fn confirm(&self, reservation_id: &str) -> Result<(), CallError> {
        let request = ConfirmReservationRequest {
            reservation_id: reservation_id.to_owned(),
        };
        call!(
            self,
            inventory,
            "/polyshop.inventory.v1.InventoryService/ConfirmReservation",
            confirm_reservation,
            request
        )
        .map(drop)
    }

    pub(super) async fn release(
        &self,
        reservation_id: &str,
        reason: &str,
    ) -> Result<(), CallError> {
        let request = ReleaseReservationRequest {
            reservation_id: reservation_id.to_owned(),
            reason: reason.to_owned(),
        };
        call!(
            self,
            inventory,
            "/polyshop.inventory.v1.InventoryService/ReleaseReservation",
            release_reservation,
            request
        )
        .map(drop)
    }

    pub(super) async fn charge(&self, request: ChargeRequest) -> Result<Payment, CallError> {
        let response = call!(
            self,
            payment,
            "/polyshop.payment.v1.PaymentService/Charge",
            charge,
            request
        )?;
        response.payment.ok_or_else(|| {
            CallError::Failed(Status::internal("payment service returned no payment"))
        })
    }

    pub(super) async fn refund(
        &self,
        payment_id: &str,
        key: &str,
        reason: &str,
    ) -> Result<(), CallError> {
        let request = RefundRequest {
            idempotency_key: key.to_owned(),
            payment_id: payment_id.to_owned(),
            reason: reason.to_owned(),
        };
        call!(
            self,
            payment,
            "/polyshop.payment.v1.PaymentService/Refund",
            refund,
            request
        )
        .map(drop)
    }

    pub(super) async fn payments_for(&self, order_id: &str) -> Result<Vec<Payment>, CallError> {
        let request = ListPaymentsRequest {
            page_size: 100,
            page_token: String::new(),
            order_id: order_id.to_owned(),
        };
        let response = call!(
            self,
            payment,
            "/polyshop.payment.v1.PaymentService/ListPayments",
            list_payments,
            request
        )?;
        Ok(response.payments)
    }
}
