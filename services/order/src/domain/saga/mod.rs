//! The placement saga and the cancellation as a pure state machine. A saga at a [`Step`]
//! issues one [`Command`] (what to ask a participant); the [`Outcome`] of that command and the
//! clock go into [`Saga::advance`], which moves the saga on and says what to [`Write`]. No
//! I/O: the app layer sends the commands and writes.
//!
//! Failure semantics: a business answer (out of stock, declined, lapsed) rejects the order and
//! compensates. A participant that is away (unreachable, breaker open, deadline) only delays:
//! the same step is tried again after a backoff with jitter, until the [`Timing::horizon_ms`]
//! of failing in a row. Past it, a forward step rejects with SERVICE_UNAVAILABLE and
//! compensates; a step that returns money or stock keeps trying and flags the saga
//! [`Saga::stuck`] for reconciliation, because giving up there would strand the money.

mod commands;
mod placement;
mod step;
mod timing;

pub use commands::*;
pub use placement::*;
pub use step::*;
pub use timing::*;

use super::{Order, OrderError, OrderEvent, PlaceOrder, Rejection};

/// A saga's persisted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saga {
    /// The order it places.
    pub order_id: String,
    /// The customer.
    pub user_id: String,
    /// The request.
    pub request: PlaceOrder,
    /// Current step.
    pub step: Step,
    /// Reservation to confirm or release, once attempted.
    pub reservation_id: Option<String>,
    /// Payment to refund on compensation or cancellation, once captured.
    pub payment_id: Option<String>,
    /// A charge may have happened without us seeing the answer.
    pub payment_uncertain: bool,
    /// Why it is being compensated.
    pub reason: Option<Rejection>,
    /// Detail of that (or the cancellation's reason).
    pub detail: String,
    /// Transient failures of the current step in a row.
    pub attempts: u32,
    /// When the current step first failed transiently (epoch ms); the horizon counts from here.
    pub failing_since: Option<i64>,
    /// The step is not tried again before this (epoch ms).
    pub next_attempt_at: i64,
    /// Why a person must look at it: money or stock still held past the horizon.
    pub stuck: Option<String>,
}

impl Saga {
    /// A new order's saga, after validation passed: next, reserve stock. The reservation id
    /// is recorded with the order and a charge counts as uncertain from here, because nothing
    /// is written again before the confirmation: a crash from here on may leave a hold or a
    /// charge we never saw, which compensation must undo.
    pub fn started(order_id: &str, user_id: &str, request: PlaceOrder) -> Self {
        Self {
            order_id: order_id.to_owned(),
            user_id: user_id.to_owned(),
            request,
            step: Step::Reserve,
            reservation_id: Some(idempotency_key(order_id, &Purpose::Reservation)),
            payment_id: None,
            payment_uncertain: true,
            reason: None,
            detail: String::new(),
            attempts: 0,
            failing_since: None,
            next_attempt_at: 0,
            stuck: None,
        }
    }

    /// A saga for an order rejected by validation: nothing to do.
    pub fn rejected(
        order_id: &str,
        user_id: &str,
        request: PlaceOrder,
        reason: Rejection,
        detail: &str,
    ) -> Self {
        Self {
            step: Step::Done,
            reservation_id: None,
            payment_uncertain: false,
            reason: Some(reason),
            detail: detail.to_owned(),
            ..Self::started(order_id, user_id, request)
        }
    }

    /// Records the cancellation of the confirmed `order`: returns its event; the saga moves to
    /// [`Step::Cancel`] (refund, return the stock, then cancelled).
    ///
    /// # Errors
    /// `NotAllowed` unless the order is CONFIRMED.
    pub fn request_cancel(
        &mut self,
        order: &Order,
        reason: &str,
    ) -> Result<OrderEvent, OrderError> {
        let event = order.request_cancel(reason)?;
        self.step = Step::Cancel;
        self.payment_id = (!order.payment_id.is_empty()).then(|| order.payment_id.clone());
        self.reservation_id = Some(idempotency_key(&self.order_id, &Purpose::Reservation));
        reason.clone_into(&mut self.detail);
        self.progressed();
        Ok(event)
    }

    /// Whether the saga has finished.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// Whether the saga is waiting out a backoff at `now`.
    pub fn is_waiting(&self, now: i64) -> bool {
        now < self.next_attempt_at
    }

    /// The call the current step needs (`order` is its order as last written).
    pub fn command(&self, order: &Order) -> Command {
        let reservation = || self.reservation_id.clone();
        match self.step {
            Step::Reserve => Command::Reserve {
                reservation_id: reservation()
                    .unwrap_or_else(|| idempotency_key(&self.order_id, &Purpose::Reservation)),
                items: self.request.lines.clone(),
            },
            Step::Charge => Command::Charge {
                key: idempotency_key(&self.order_id, &Purpose::Charge),
                order: Box::new(order.clone()),
                payment_method_token: self.request.payment_method_token.clone(),
            },
            Step::Confirm => Command::ConfirmReservation {
                reservation_id: reservation().unwrap_or_default(),
            },
            Step::Compensate | Step::Cancel => {
                let (purpose, why) = if self.step == Step::Cancel {
                    (Purpose::CancellationRefund, "order cancelled")
                } else {
                    (Purpose::CompensationRefund, "order rejected")
                };
                if let Some(payment_id) = &self.payment_id {
                    Command::Refund {
                        payment_id: payment_id.clone(),
                        key: idempotency_key(&self.order_id, &purpose),
                        reason: why,
                    }
                } else if let Some(reservation_id) = reservation() {
                    Command::Release {
                        reservation_id,
                        reason: why,
                    }
                } else {
                    Command::Finish
                }
            }
            Step::VoidPayment => Command::VoidCharges {
                order_id: self.order_id.clone(),
            },
            Step::Done => Command::Finish,
        }
    }

    /// Moves the saga on by the `outcome` of [`Saga::command`] for `order`, at `now`.
    ///
    /// # Errors
    /// `Internal` for an outcome that does not answer the step's command; `NotAllowed` if the
    /// order's status does not allow the event (another writer moved it).
    pub fn advance(
        &mut self,
        order: &Order,
        outcome: Outcome,
        now: Now,
        timing: &Timing,
    ) -> Result<Write, OrderError> {
        use Outcome as O;
        if let O::Unreachable { sent, detail } = outcome {
            return Ok(self.transient(sent, &detail, now, timing));
        }
        let step = self.step;
        let write = match (step, outcome) {
            (Step::Reserve, O::Reserved) => {
                self.step = Step::Charge;
                Write::Nothing
            }
            (Step::Reserve, O::OutOfStock { detail }) => {
                self.reservation_id = None;
                self.fail(Rejection::InsufficientStock, detail)
            }
            (Step::Charge, O::Charged { payment_id }) => {
                self.payment_uncertain = false;
                self.payment_id = Some(payment_id);
                self.step = Step::Confirm;
                Write::Nothing
            }
            (Step::Charge, O::Declined { detail }) => {
                self.payment_uncertain = false;
                self.fail(
                    Rejection::PaymentDeclined,
                    format!("payment refused: {detail}"),
                )
            }
            (Step::Confirm, O::ReservationConfirmed) => {
                let event = order.confirm(self.payment_id.as_deref().unwrap_or_default())?;
                self.step = Step::Done;
                Write::Append(vec![event])
            }
            (Step::Confirm, O::ReservationLapsed { detail }) => {
                self.reservation_id = None;
                self.fail(
                    Rejection::InsufficientStock,
                    format!("reservation lapsed: {detail}"),
                )
            }
            (Step::Compensate | Step::Cancel, O::Refunded) => {
                self.payment_id = None;
                Write::Save
            }
            (Step::Compensate | Step::Cancel | Step::VoidPayment, O::RefundRefused { detail }) => {
                // Money is still with us: keep asking (the refusal may be a lagging replica or
                // a bug fixed by a deploy), and flag it past the horizon.
                return Ok(self.transient(
                    false,
                    &format!("refund refused: {detail}"),
                    now,
                    timing,
                ));
            }
            (Step::Compensate | Step::Cancel, O::Released) => {
                self.reservation_id = None;
                Write::Nothing
            }
            (Step::Compensate, O::Finished) => {
                let reason = self.reason.unwrap_or(Rejection::ServiceUnavailable);
                // A charge whose answer was never seen is voided after the order is final.
                self.step = if self.payment_uncertain {
                    Step::VoidPayment
                } else {
                    Step::Done
                };
                if order.status == super::OrderStatus::Pending {
                    Write::Append(vec![order.reject(reason, &self.detail)?])
                } else {
                    Write::Save
                }
            }
            (Step::Cancel, O::Finished) => {
                self.step = Step::Done;
                Write::Append(vec![order.cancel()?])
            }
            (Step::VoidPayment, O::Voided) => {
                self.payment_uncertain = false;
                self.step = Step::Done;
                Write::Save
            }
            (step, outcome) => {
                return Err(OrderError::Internal(
                    format!(
                        "saga of order {} at step {} got {outcome:?}",
                        self.order_id,
                        step.as_str()
                    )
                    .into(),
                ));
            }
        };
        self.progressed();
        Ok(write)
    }

    /// A business failure: compensate what was done, then reject for `reason`.
    fn fail(&mut self, reason: Rejection, detail: impl Into<String>) -> Write {
        self.reason = Some(reason);
        self.detail = detail.into();
        self.step = Step::Compensate;
        Write::Save
    }

    /// The step got an answer: the retry bookkeeping starts over.
    fn progressed(&mut self) {
        self.attempts = 0;
        self.failing_since = None;
        self.next_attempt_at = 0;
        self.stuck = None;
    }

    /// No answer (or a refund refused): try the same step again after a backoff; past the
    /// horizon, reject a forward step, flag a returning one.
    fn transient(&mut self, sent: bool, detail: &str, now: Now, timing: &Timing) -> Write {
        if sent && self.step == Step::Charge {
            self.payment_uncertain = true;
        }
        let since = *self.failing_since.get_or_insert(now.at);
        if now.at - since >= timing.horizon_ms {
            if !self.step.returns_money_or_stock() {
                let detail = format!("{} kept failing: {detail}", self.step.as_str());
                let write = self.fail(Rejection::ServiceUnavailable, detail);
                self.progressed();
                return write;
            }
            self.stuck = Some(format!(
                "{} failing for {} s: {detail}",
                self.step.as_str(),
                (now.at - since) / 1000
            ));
        }
        self.attempts = self.attempts.saturating_add(1);
        self.next_attempt_at = now.at + timing.backoff(self.attempts, now.jitter);
        Write::Save
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
