//! The CreateOrder saga, orchestrated here and persisted after every step (a capture with the
//! confirmation that follows it, see `charge`): validate the user
//! → price the items from the catalog → reserve stock → charge → confirm the reservation →
//! CONFIRMED. A failed step compensates the completed ones in reverse (refund, release) and
//! the order ends REJECTED with a reason. Every participant call carries a key derived from
//! the order id, so a resumed saga repeats nothing.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use polyshop::{
    api::v1::Money as PbMoney,
    inventory::v1::ReservationItem,
    payment::v1::{ChargeRequest, LineItem, PaymentStatus},
    user::v1::UserStatus as PbUserStatus,
};
use polyshop_platform::{events::outbox::OutboxSignal, flags::Flags};
use tonic::{Code, Status};

use crate::{
    domain::{
        Money, Order, OrderError, OrderEvent, OrderLine, OrderStatus, PlaceOrder, Rejection,
        check_place_order, total_of,
    },
    failpoint,
    participants::Participants,
    store::{Created, EventStore, Saga, SagaJournal, SagaStep, SagaStore, UserReplica},
};

/// Marks a saga as driven by one task of this process; dropping it releases the mark.
struct Driving<'a> {
    running: &'a Mutex<HashSet<String>>,
    order_id: String,
}

impl Drop for Driving<'_> {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.order_id);
    }
}

/// How a drive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drive {
    /// The saga is done.
    Finished,
    /// A participant is away; the resumer will continue later.
    Stalled,
}

/// Runs sagas.
#[derive(Debug)]
pub struct SagaRunner {
    pub(crate) events: EventStore,
    sagas: SagaStore,
    journal: SagaJournal,
    replica: UserReplica,
    participants: Arc<Participants>,
    outbox: OutboxSignal,
    running: Mutex<HashSet<String>>,
    flags: Flags,
}

fn is_unreachable(status: &Status) -> bool {
    polyshop_platform::resilience::is_upstream_failure(status.code())
}

impl SagaRunner {
    /// A runner over the stores and participants.
    pub fn new(
        events: EventStore,
        sagas: SagaStore,
        replica: UserReplica,
        participants: Arc<Participants>,
        outbox: OutboxSignal,
    ) -> Self {
        Self {
            journal: SagaJournal::start(events.clone()),
            events,
            sagas,
            replica,
            participants,
            outbox,
            running: Mutex::default(),
            flags: Flags::new(&std::collections::BTreeMap::new()),
        }
    }

    /// Reads feature flags (`order_replica_fallback`) from `flags` instead of the defaults.
    #[must_use]
    pub fn with_flags(mut self, flags: Flags) -> Self {
        self.flags = flags;
        self
    }

    /// Places an order for `user_id`: validates it, stores the saga with the new order under
    /// the idempotency key, drives the saga, and returns the order. A repeated key returns
    /// the order the first call placed (the repeat's validation is discarded; it has no
    /// effects).
    ///
    /// # Errors
    /// `Invalid` for bad input; `Unavailable` when a participant was down and the order was
    /// rejected and compensated; `Internal`.
    pub async fn place(&self, user_id: &str, request: PlaceOrder) -> Result<Order, OrderError> {
        check_place_order(&request).into_result()?;
        let order_id = polyshop_platform::new_id();
        // Held from before the saga is stored: once it is, the resumer sees it unfinished and
        // must leave it to this call.
        let driving = self.driving(&order_id).ok_or_else(|| {
            OrderError::Internal("a freshly generated order id is being driven".into())
        })?;
        let mut saga = Saga::claimed(&order_id, user_id, request);
        let events = self.validation(&mut saga).await?;
        let order = match self.journal.create(&events, &saga).await? {
            Created::New(order) => order,
            Created::Existing(id) => {
                drop(driving);
                self.wait_for(&id).await?;
                return self.placed(&id).await;
            }
        };
        self.outbox.wake();
        failpoint::hit("order.after_create");
        let (saga, order) = self.steps(saga, Some(*order)).await?;
        drop(driving);
        match order {
            Some(order) => Self::outcome(&order_id, &saga, order),
            None => self.placed(&order_id).await,
        }
    }

    /// The outcome of the saga of `order_id`, read from the store.
    async fn placed(&self, order_id: &str) -> Result<Order, OrderError> {
        let saga = self
            .sagas
            .get(order_id)
            .await?
            .ok_or(OrderError::NotFound)?;
        let order = self
            .events
            .load(order_id)
            .await?
            .ok_or(OrderError::NotFound)?;
        Self::outcome(order_id, &saga, order)
    }

    /// The order, or UNAVAILABLE if it could not be placed because a participant was away.
    fn outcome(order_id: &str, saga: &Saga, order: Order) -> Result<Order, OrderError> {
        let unavailable = saga.reason == Some(Rejection::ServiceUnavailable)
            || order.rejection == Some(Rejection::ServiceUnavailable);
        if unavailable && order.status != OrderStatus::Confirmed {
            return Err(OrderError::Unavailable(format!(
                "order {order_id} could not be placed: {}",
                if saga.detail.is_empty() {
                    "a participant is unavailable"
                } else {
                    &saga.detail
                }
            )));
        }
        Ok(order)
    }

    async fn wait_for(&self, order_id: &str) -> Result<(), OrderError> {
        for _ in 0..600 {
            if let Some(saga) = self.sagas.get(order_id).await?
                && matches!(saga.step, SagaStep::Done | SagaStep::VoidPayment)
                && self.events.load(order_id).await?.is_some()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Resumes every unfinished saga (at start, and periodically).
    pub async fn resume_all(&self) {
        match self.sagas.unfinished().await {
            Ok(ids) => {
                for id in ids {
                    if let Err(e) = self.drive(&id).await {
                        tracing::warn!(order_id = %id, error = %e, "saga resume failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list unfinished sagas"),
        }
    }

    /// Runs a saga from its persisted step until it finishes or stalls.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn drive(&self, order_id: &str) -> Result<Drive, OrderError> {
        Ok(match self.drive_state(order_id).await? {
            Some(saga) if saga.step == SagaStep::Done => Drive::Finished,
            _ => Drive::Stalled,
        })
    }

    /// Drives the persisted saga and returns where it stopped, or `None` when another task of
    /// this process is driving it.
    async fn drive_state(&self, order_id: &str) -> Result<Option<Saga>, OrderError> {
        let Some(_driving) = self.driving(order_id) else {
            return Ok(None);
        };
        let saga = self
            .sagas
            .get(order_id)
            .await?
            .ok_or(OrderError::NotFound)?;
        Ok(Some(self.steps(saga, None).await?.0))
    }

    /// Marks `order_id` as driven by the caller until the guard drops; `None` if it already is.
    fn driving(&self, order_id: &str) -> Option<Driving<'_>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(order_id.to_owned())
            .then(|| Driving {
                running: &self.running,
                order_id: order_id.to_owned(),
            })
    }

    /// Runs the steps from `saga`'s and returns where it stopped, with the order as last
    /// written. The saga and the order (`known`, else read when needed) stay in memory
    /// between steps: what a resumed saga needs is written before the step that needs it (see
    /// `validation` and `charge`), and the caller holds [`Driving`], so this task is the only
    /// writer of a pending order here (another process's append is refused by the event
    /// store's version check).
    async fn steps(
        &self,
        mut saga: Saga,
        known: Option<Order>,
    ) -> Result<(Saga, Option<Order>), OrderError> {
        let mut order = known;
        loop {
            let progressed = match saga.step {
                SagaStep::Validate => self.validate(&mut saga, &mut order).await?,
                SagaStep::Reserve => self.reserve(&mut saga).await?,
                SagaStep::Charge => self.charge(&mut saga, &mut order).await?,
                SagaStep::Confirm => self.confirm(&mut saga, &mut order).await?,
                SagaStep::Compensate => self.compensate(&mut saga, &mut order).await?,
                SagaStep::VoidPayment => self.void_payment(&mut saga).await?,
                SagaStep::Done => return Ok((saga, order)),
            };
            if !progressed {
                return Ok((saga, order));
            }
        }
    }

    /// The order as last written: from memory, else from the event store.
    async fn order_of(&self, saga: &Saga, cached: &mut Option<Order>) -> Result<Order, OrderError> {
        if let Some(order) = cached {
            return Ok(order.clone());
        }
        let order = self
            .events
            .load(&saga.order_id)
            .await?
            .ok_or(OrderError::NotFound)?;
        *cached = Some(order.clone());
        Ok(order)
    }

    /// Appends `events` and saves `saga` in one transaction (shared with other sagas' writes
    /// of the moment), then wakes the outbox relay.
    async fn commit(
        &self,
        current: Option<&Order>,
        events: &[OrderEvent],
        saga: &Saga,
    ) -> Result<Order, OrderError> {
        let order = self.journal.append(current, events, saga).await?;
        self.outbox.wake();
        Ok(order)
    }

    fn fail(saga: &mut Saga, reason: Rejection, detail: impl Into<String>) {
        saga.reason = Some(reason);
        saga.detail = detail.into();
        saga.step = SagaStep::Compensate;
    }

    async fn check_user(&self, user_id: &str) -> Result<Option<(Rejection, String)>, OrderError> {
        match self.participants.user(user_id).await {
            Ok(user) if user.status == PbUserStatus::Active as i32 => Ok(None),
            Ok(_) => Ok(Some((
                Rejection::UserInactive,
                "the account is not active".into(),
            ))),
            Err(s) if s.code() == Code::NotFound => {
                Ok(Some((Rejection::UserNotFound, "no such account".into())))
            }
            Err(s) if !self.flags.enabled("order_replica_fallback") => Ok(Some((
                Rejection::ServiceUnavailable,
                format!(
                    "cannot check the account (replica fallback is switched off): {}",
                    s.message()
                ),
            ))),
            Err(s) => {
                // The user service is away: the replica fed by user events decides.
                let replicated = self.replica.status(user_id).await?;
                tracing::warn!(%user_id, code = ?s.code(), replica = ?replicated, "user service unavailable; using the replica");
                Ok(match replicated.as_deref() {
                    Some("active") => None,
                    Some("deleted") => Some((Rejection::UserNotFound, "no such account".into())),
                    Some(_) => Some((Rejection::UserInactive, "the account is not active".into())),
                    None => Some((
                        Rejection::ServiceUnavailable,
                        format!("cannot check the account: {}", s.message()),
                    )),
                })
            }
        }
    }

    /// A saga stored at the first step (by an earlier version, which stored it before
    /// validating): validates it and writes the outcome.
    async fn validate(
        &self,
        saga: &mut Saga,
        cached: &mut Option<Order>,
    ) -> Result<bool, OrderError> {
        let events = self.validation(saga).await?;
        *cached = Some(self.commit(None, &events, saga).await?);
        failpoint::hit("order.after_create");
        Ok(true)
    }

    /// Checks the user and prices the items (no effects anywhere), moves `saga` on, and returns
    /// the new order's events: created, and rejected when a check failed.
    async fn validation(&self, saga: &mut Saga) -> Result<Vec<OrderEvent>, OrderError> {
        let mut rejection = self.check_user(&saga.user_id).await?;
        let ids: Vec<String> = saga
            .request
            .lines
            .iter()
            .map(|l| l.product_id.clone())
            .collect();
        let mut lines = Vec::with_capacity(ids.len());
        match self.participants.products(ids).await {
            Ok((products, _)) => {
                for requested in &saga.request.lines {
                    let found = products
                        .iter()
                        .find(|p| p.product_id == requested.product_id && p.active);
                    if found.is_none() && rejection.is_none() {
                        rejection = Some((
                            Rejection::ProductNotFound,
                            format!("product {} is not available", requested.product_id),
                        ));
                    }
                    let price = found.and_then(|p| p.price.as_ref());
                    lines.push(OrderLine {
                        product_id: requested.product_id.clone(),
                        product_name: found.map(|p| p.name.clone()).unwrap_or_default(),
                        quantity: requested.quantity,
                        unit_price: Money {
                            amount_minor: price.map_or(0, |m| m.amount_minor),
                            currency: price.map(|m| m.currency_code.clone()).unwrap_or_default(),
                        },
                    });
                }
            }
            Err(s) => {
                rejection.get_or_insert((
                    Rejection::ServiceUnavailable,
                    format!("cannot price the items: {}", s.message()),
                ));
                lines = saga
                    .request
                    .lines
                    .iter()
                    .map(|l| OrderLine {
                        product_id: l.product_id.clone(),
                        product_name: String::new(),
                        quantity: l.quantity,
                        unit_price: Money::default(),
                    })
                    .collect();
            }
        }
        let total = total_of(&lines);
        if total.is_none() && rejection.is_none() {
            rejection = Some((
                Rejection::CurrencyMismatch,
                "items are priced in different currencies".into(),
            ));
        }
        let order = Order::placed(
            saga.order_id.clone(),
            saga.user_id.clone(),
            lines,
            total.unwrap_or_default(),
            saga.request.shipping.clone(),
        );
        let mut events = vec![OrderEvent::Created(Box::new(order))];
        match rejection {
            Some((reason, detail)) => {
                saga.reason = Some(reason);
                saga.detail.clone_from(&detail);
                events.push(OrderEvent::Rejected { reason, detail });
                saga.step = SagaStep::Done;
            }
            None => {
                // Recorded with the order, before the call: if we crash mid-call,
                // compensation knows to release.
                saga.reservation_id = Some(format!("order-{}", saga.order_id));
                saga.step = SagaStep::Reserve;
                // Nothing is written again before the confirmation: a crash from here on may
                // leave a charge we never saw, which a rejected order must void.
                saga.payment_uncertain = true;
            }
        }
        Ok(events)
    }

    async fn reserve(&self, saga: &mut Saga) -> Result<bool, OrderError> {
        let reservation_id = format!("order-{}", saga.order_id);
        if saga.reservation_id.is_none() {
            // A saga persisted before the id was recorded with the order.
            saga.reservation_id = Some(reservation_id.clone());
            self.journal.save(saga).await?;
        }
        let items = saga
            .request
            .lines
            .iter()
            .map(|l| ReservationItem {
                product_id: l.product_id.clone(),
                quantity: l.quantity,
            })
            .collect();
        match self.participants.reserve(&reservation_id, items).await {
            Ok(()) => saga.step = SagaStep::Charge,
            Err(s) if s.code() == Code::FailedPrecondition => {
                saga.reservation_id = None;
                Self::fail(saga, Rejection::InsufficientStock, s.message());
            }
            Err(s) => Self::fail(
                saga,
                Rejection::ServiceUnavailable,
                format!("inventory: {}", s.message()),
            ),
        }
        // A reservation is not written: a resumed saga reserves again under the same id and
        // gets it back (and the charge is already marked uncertain). A failure is written now,
        // before compensation starts.
        if saga.step != SagaStep::Charge {
            self.journal.save(saga).await?;
        }
        failpoint::hit("order.after_reserve");
        Ok(true)
    }

    async fn charge(
        &self,
        saga: &mut Saga,
        cached: &mut Option<Order>,
    ) -> Result<bool, OrderError> {
        let order = self.order_of(saga, cached).await?;
        if !saga.payment_uncertain {
            // A saga persisted before the flag was written with the reserve step.
            saga.payment_uncertain = true;
            self.journal.save(saga).await?;
        }
        let money = |m: &Money| PbMoney {
            amount_minor: m.amount_minor,
            currency_code: m.currency.clone(),
        };
        let request = ChargeRequest {
            idempotency_key: format!("order-{}", saga.order_id),
            order_id: saga.order_id.clone(),
            user_id: saga.user_id.clone(),
            amount: Some(money(&order.total)),
            payment_method_token: saga.request.payment_method_token.clone(),
            line_items: order
                .lines
                .iter()
                .map(|l| LineItem {
                    description: l.product_name.clone(),
                    quantity: l.quantity,
                    unit_price: Some(money(&l.unit_price)),
                })
                .collect(),
        };
        match self.participants.charge(request).await {
            Ok(payment) if payment.status == PaymentStatus::Captured as i32 => {
                saga.payment_uncertain = false;
                saga.payment_id = Some(payment.payment_id);
                saga.step = SagaStep::Confirm;
            }
            Ok(payment) => {
                saga.payment_uncertain = false;
                Self::fail(
                    saga,
                    Rejection::PaymentDeclined,
                    format!("card declined: {}", payment.decline_code),
                );
            }
            Err(s) if matches!(s.code(), Code::InvalidArgument | Code::FailedPrecondition) => {
                saga.payment_uncertain = false;
                Self::fail(
                    saga,
                    Rejection::PaymentDeclined,
                    format!("payment refused: {}", s.message()),
                );
            }
            Err(s) => {
                // With the breaker open the request was never sent: nothing can have been charged.
                if s.message().contains("circuit open") {
                    saga.payment_uncertain = false;
                }
                Self::fail(
                    saga,
                    Rejection::ServiceUnavailable,
                    format!("payment: {}", s.message()),
                );
            }
        }
        // A capture is written by the confirm step's commit, not here: a crash in between
        // leaves the saga at this step, still marked uncertain, and the charge sent again with
        // the same idempotency key returns the stored payment. Any other outcome is written
        // now, before compensation starts.
        if saga.step != SagaStep::Confirm {
            self.journal.save(saga).await?;
        }
        failpoint::hit("order.after_charge");
        Ok(true)
    }

    async fn confirm(
        &self,
        saga: &mut Saga,
        cached: &mut Option<Order>,
    ) -> Result<bool, OrderError> {
        let reservation_id = saga.reservation_id.clone().unwrap_or_default();
        match self.participants.confirm(&reservation_id).await {
            Ok(()) => {
                let order = self.order_of(saga, cached).await?;
                let event = order.confirm(saga.payment_id.as_deref().unwrap_or_default())?;
                saga.step = SagaStep::Done;
                *cached = Some(self.commit(Some(&order), &[event], saga).await?);
                failpoint::hit("order.after_confirm");
                Ok(true)
            }
            Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::NotFound) => {
                // The hold expired and was released before we could confirm it.
                saga.reservation_id = None;
                Self::fail(
                    saga,
                    Rejection::InsufficientStock,
                    format!("reservation lapsed: {}", s.message()),
                );
                self.journal.save(saga).await?;
                Ok(true)
            }
            Err(s) => {
                tracing::warn!(order_id = %saga.order_id, code = ?s.code(), "cannot confirm the reservation yet");
                Ok(false)
            }
        }
    }

    async fn compensate(
        &self,
        saga: &mut Saga,
        cached: &mut Option<Order>,
    ) -> Result<bool, OrderError> {
        let order_id = saga.order_id.clone();
        if let Some(payment_id) = saga.payment_id.clone() {
            match self
                .participants
                .refund(
                    &payment_id,
                    &format!("order-{order_id}-refund"),
                    "order rejected",
                )
                .await
            {
                Ok(()) => {}
                Err(s) if s.code() == Code::FailedPrecondition => {}
                Err(s) if is_unreachable(&s) => return Ok(false),
                Err(s) => tracing::error!(%order_id, %payment_id, error = %s, "refund refused"),
            }
            saga.payment_id = None;
            self.journal.save(saga).await?;
        }
        if let Some(reservation_id) = saga.reservation_id.clone() {
            match self
                .participants
                .release(&reservation_id, "order rejected")
                .await
            {
                Ok(()) => {}
                Err(s) if matches!(s.code(), Code::NotFound | Code::FailedPrecondition) => {}
                Err(_) => return Ok(false),
            }
            saga.reservation_id = None;
        }
        let order = self.order_of(saga, cached).await?;
        let reason = saga.reason.unwrap_or(Rejection::ServiceUnavailable);
        // The order is final now; a charge whose answer we never saw is voided afterwards.
        saga.step = if saga.payment_uncertain {
            SagaStep::VoidPayment
        } else {
            SagaStep::Done
        };
        let events = if order.status == OrderStatus::Pending {
            vec![order.reject(reason, &saga.detail)?]
        } else {
            vec![]
        };
        *cached = Some(self.commit(Some(&order), &events, saga).await?);
        tracing::info!(%order_id, reason = reason.as_str(), detail = %saga.detail, "order rejected and compensated");
        Ok(true)
    }

    /// Refunds anything captured for a rejected order whose charge answer was never seen.
    async fn void_payment(&self, saga: &mut Saga) -> Result<bool, OrderError> {
        let order_id = saga.order_id.clone();
        let Ok(payments) = self.participants.payments_for(&order_id).await else {
            return Ok(false);
        };
        for p in payments
            .iter()
            .filter(|p| p.status == PaymentStatus::Captured as i32)
        {
            let key = format!("order-{order_id}-void-{}", p.payment_id);
            match self
                .participants
                .refund(&p.payment_id, &key, "order rejected")
                .await
            {
                Ok(()) => {
                    tracing::warn!(%order_id, payment_id = %p.payment_id, "voided a charge of a rejected order")
                }
                Err(s) if s.code() == Code::FailedPrecondition => {}
                Err(_) => return Ok(false),
            }
        }
        saga.payment_uncertain = false;
        saga.step = SagaStep::Done;
        self.journal.save(saga).await?;
        Ok(true)
    }
}
