//! The saga's participants over gRPC (the adapter of `app::ports::Participants`): user,
//! catalog, inventory and payment, each call with a service token, a deadline, retries only
//! where the contract marks the method idempotent, a circuit breaker and a bulkhead per
//! upstream; each upstream is its configured URL, or its live instances from the registry when
//! discovery is on. gRPC answers become domain outcomes here and nowhere else.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use polyshop::{api::v1::Money as PbMoney, payment::v1::LineItem};
use polyshop::{
    catalog::v1::{BatchGetProductsRequest, Product, catalog_service_client::CatalogServiceClient},
    inventory::v1::{
        ConfirmReservationRequest, ReleaseReservationRequest, ReservationItem, ReserveStockRequest,
        inventory_service_client::InventoryServiceClient,
    },
    payment::v1::{
        ChargeRequest, ListPaymentsRequest, Payment, PaymentStatus, RefundRequest,
        payment_service_client::PaymentServiceClient,
    },
    user::v1::{GetUserRequest, User, UserStatus, user_service_client::UserServiceClient},
};
use polyshop_platform::{
    auth::{ServiceAuth, ServiceTokens},
    config::{OrderSettings, Settings},
    events::EventBus,
    resilience::{self, Bulkhead, CallError, CircuitBreaker, RetryPolicy},
    server::StartError,
};
use tonic::{Code, Status, service::interceptor::InterceptedService, transport::Channel};

use crate::{
    app::ports::{Away, Standing},
    domain::{
        Money,
        saga::{Command, Outcome, PricedProduct, Purpose, idempotency_key},
    },
};

type Authed = InterceptedService<Channel, ServiceAuth>;

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
}

/// A lazy channel to participant `service` (found through the registry when discovery is on).
fn channel(
    bus: &EventBus,
    service: &str,
    url: &str,
    timeout: Duration,
) -> Result<Channel, StartError> {
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
        resilience::call(&$self.$upstream.breaker, &$self.policy, $path, || {
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
        let upstream = |name: &str, url: &str| channel(bus, name, url, timeout);
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
        })
    }

    async fn user(&self, user_id: &str) -> Result<User, CallError> {
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

    async fn batch_products(&self, ids: Vec<String>) -> Result<Vec<Product>, CallError> {
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

    async fn reserve(
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

    async fn confirm(&self, reservation_id: &str) -> Result<(), CallError> {
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

    async fn release(&self, reservation_id: &str, reason: &str) -> Result<(), CallError> {
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

    async fn charge(&self, request: ChargeRequest) -> Result<Payment, CallError> {
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

    async fn refund(&self, payment_id: &str, key: &str, reason: &str) -> Result<(), CallError> {
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

    async fn payments_for(&self, order_id: &str) -> Result<Vec<Payment>, CallError> {
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

    /// Refunds every captured payment of the order (a charge whose answer was never seen).
    async fn void_charges(&self, order_id: &str) -> Result<(), CallError> {
        for p in self
            .payments_for(order_id)
            .await?
            .iter()
            .filter(|p| p.status == PaymentStatus::Captured as i32)
        {
            let key = idempotency_key(
                order_id,
                &Purpose::Void {
                    payment_id: &p.payment_id,
                },
            );
            match self.refund(&p.payment_id, &key, "order rejected").await {
                Ok(()) => {
                    tracing::warn!(%order_id, payment_id = %p.payment_id, "voided a charge of a rejected order")
                }
                Err(CallError::Failed(s)) if s.code() == Code::FailedPrecondition => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn send(&self, command: &Command) -> Result<Outcome, CallError> {
        Ok(match command {
            Command::Reserve {
                reservation_id,
                items,
            } => {
                let items = items
                    .iter()
                    .map(|l| ReservationItem {
                        product_id: l.product_id.clone(),
                        quantity: l.quantity,
                    })
                    .collect();
                self.reserve(reservation_id, items).await?;
                Outcome::Reserved
            }
            Command::Charge {
                key,
                order,
                payment_method_token,
            } => {
                let payment = self
                    .charge(charge_request(key, order, payment_method_token))
                    .await?;
                if payment.status == PaymentStatus::Captured as i32 {
                    Outcome::Charged {
                        payment_id: payment.payment_id,
                    }
                } else {
                    Outcome::Declined {
                        detail: format!("card declined: {}", payment.decline_code),
                    }
                }
            }
            Command::ConfirmReservation { reservation_id } => {
                self.confirm(reservation_id).await?;
                Outcome::ReservationConfirmed
            }
            Command::Refund {
                payment_id,
                key,
                reason,
            } => match self.refund(payment_id, key, reason).await {
                // Not refundable: already refunded, or never captured. Nothing to give back.
                Err(CallError::Failed(s)) if s.code() == Code::FailedPrecondition => {
                    Outcome::Refunded
                }
                other => other.map(|()| Outcome::Refunded)?,
            },
            Command::Release {
                reservation_id,
                reason,
            } => match self.release(reservation_id, reason).await {
                // Unknown or already settled: no stock is held under it.
                Err(CallError::Failed(s))
                    if matches!(s.code(), Code::NotFound | Code::FailedPrecondition) =>
                {
                    Outcome::Released
                }
                Err(CallError::Failed(s)) if is_refusal(&s) => {
                    return Err(CallError::Failed(Status::unavailable(format!(
                        "release refused: {}",
                        s.message()
                    ))));
                }
                other => other.map(|()| Outcome::Released)?,
            },
            Command::VoidCharges { order_id } => {
                self.void_charges(order_id).await?;
                Outcome::Voided
            }
            Command::Finish => Outcome::Finished,
        })
    }
}

/// A business answer (the participant understood and said no), as opposed to one that says
/// it is unhealthy or that we are misconfigured, which only delays.
fn is_refusal(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::FailedPrecondition
            | Code::InvalidArgument
            | Code::NotFound
            | Code::OutOfRange
            | Code::AlreadyExists
    )
}

fn charge_request(key: &str, order: &crate::domain::Order, token: &str) -> ChargeRequest {
    let money = |m: &Money| PbMoney {
        amount_minor: m.amount_minor,
        currency_code: m.currency.clone(),
    };
    ChargeRequest {
        idempotency_key: key.to_owned(),
        order_id: order.id.clone(),
        user_id: order.user_id.clone(),
        amount: Some(money(&order.total)),
        payment_method_token: token.to_owned(),
        line_items: order
            .lines
            .iter()
            .map(|l| LineItem {
                description: l.product_name.clone(),
                quantity: l.quantity,
                unit_price: Some(money(&l.unit_price)),
            })
            .collect(),
    }
}

fn away(e: &CallError) -> Away {
    Away {
        detail: e.status().message().to_owned(),
    }
}

impl crate::app::ports::Participants for GrpcParticipants {
    fn standing<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Standing, Away>> {
        Box::pin(async move {
            match self.user(user_id).await {
                Ok(user) if user.status == UserStatus::Active as i32 => Ok(Standing::Active),
                Ok(_) => Ok(Standing::Inactive),
                Err(CallError::Failed(s)) if s.code() == Code::NotFound => Ok(Standing::NotFound),
                Err(e) => Err(away(&e)),
            }
        })
    }

    fn products(&self, ids: Vec<String>) -> BoxFuture<'_, Result<Vec<PricedProduct>, Away>> {
        Box::pin(async move {
            let products = self.batch_products(ids).await.map_err(|e| away(&e))?;
            Ok(products
                .into_iter()
                .map(|p| PricedProduct {
                    price: p.price.map(|m| Money {
                        amount_minor: m.amount_minor,
                        currency: m.currency_code,
                    }),
                    product_id: p.product_id,
                    name: p.name,
                    active: p.active,
                })
                .collect())
        })
    }

    fn execute<'a>(&'a self, command: &'a Command) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match self.send(command).await {
                Ok(outcome) => outcome,
                Err(CallError::Failed(s)) if is_refusal(&s) => command.refusal(s.message()),
                Err(e) => Outcome::Unreachable {
                    sent: e.may_have_been_sent(),
                    detail: e.status().message().to_owned(),
                },
            }
        })
    }
}
