//! The adapter of `app::ports::Participants` over the gRPC clients in `upstreams.rs`: saga
//! commands become calls, and gRPC answers become domain outcomes here and nowhere else.

use futures::future::BoxFuture;
use polyshop::{
    api::v1::Money as PbMoney,
    inventory::v1::ReservationItem,
    payment::v1::{ChargeRequest, LineItem, PaymentStatus},
    user::v1::UserStatus,
};
use polyshop_platform::resilience::CallError;
use tonic::{Code, Status};

use super::GrpcParticipants;
use crate::{
    app::ports::{Away, Standing},
    domain::{
        Money,
        saga::{Command, Outcome, PricedProduct, Purpose, idempotency_key},
    },
};

impl GrpcParticipants {
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
