//! In-memory fakes of the ports, for the use cases' tests: a saga log with the event store's
//! version check, and participants that keep stock and payments the way the real services do
//! (idempotent by reservation id and key), with switches for refusals, outages and crashes.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use futures::future::BoxFuture;

use super::ports::{AccountReplica, Away, FIRST_EPOCH, Fence, Participants, SagaLog, Standing};
use crate::{
    domain::{
        Money, Order, OrderError, OrderEvent,
        saga::{Command, Outcome, PricedProduct, Saga},
    },
    store::Created,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A saga log in memory.
#[derive(Debug, Default)]
pub struct MemoryLog {
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    sagas: HashMap<String, Saga>,
    streams: HashMap<String, Vec<(OrderEvent, i64)>>,
    keys: HashMap<(String, String), String>,
    /// Claims by order id: owner (none once released), lease end, epoch.
    claims: HashMap<String, (Option<String>, i64, i64)>,
}

impl LogState {
    fn order(&self, order_id: &str) -> Option<Order> {
        Order::replay(None, self.streams.get(order_id)?)
    }

    /// `LeaseLost` unless `fence` is the saga's current epoch.
    fn fenced(&self, fence: &Fence) -> Result<(), OrderError> {
        match self.claims.get(&fence.order_id) {
            Some((_, _, epoch)) if *epoch == fence.epoch => Ok(()),
            _ => Err(OrderError::LeaseLost {
                order_id: fence.order_id.clone(),
            }),
        }
    }
}

impl MemoryLog {
    /// The saga as stored.
    pub fn stored(&self, order_id: &str) -> Option<Saga> {
        lock(&self.state).sagas.get(order_id).cloned()
    }

    /// As if the instance holding the saga died: its lease lapses and the epoch moves on, so
    /// a task of it that is still hanging is fenced off.
    pub fn lapse(&self, order_id: &str) {
        if let Some(claim) = lock(&self.state).claims.get_mut(order_id) {
            *claim = (None, 0, claim.2 + 1);
        }
    }
}

impl SagaLog for MemoryLog {
    fn create<'a>(
        &'a self,
        events: &'a [OrderEvent],
        saga: &'a Saga,
        owner: &'a str,
        lease_until: i64,
    ) -> BoxFuture<'a, Result<Created, OrderError>> {
        Box::pin(async move {
            let mut s = lock(&self.state);
            let key = (saga.user_id.clone(), saga.request.idempotency_key.clone());
            if let Some(existing) = s.keys.get(&key) {
                return Ok(Created::Existing(existing.clone()));
            }
            s.keys.insert(key, saga.order_id.clone());
            s.claims.insert(
                saga.order_id.clone(),
                (Some(owner.to_owned()), lease_until, FIRST_EPOCH),
            );
            s.sagas.insert(saga.order_id.clone(), saga.clone());
            s.streams.insert(
                saga.order_id.clone(),
                events.iter().map(|e| (e.clone(), 1)).collect(),
            );
            Ok(Created::New(Box::new(
                s.order(&saga.order_id).ok_or(OrderError::NotFound)?,
            )))
        })
    }

    fn placed_under<'a>(
        &'a self,
        user_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, OrderError>> {
        Box::pin(async move {
            Ok(lock(&self.state)
                .keys
                .get(&(user_id.to_owned(), key.to_owned()))
                .cloned())
        })
    }

    fn claim<'a>(
        &'a self,
        order_id: &'a str,
        owner: &'a str,
        now: i64,
        lease_until: i64,
    ) -> BoxFuture<'a, Result<Option<Fence>, OrderError>> {
        Box::pin(async move {
            let mut s = lock(&self.state);
            let Some(claim) = s.claims.get_mut(order_id) else {
                return Ok(None);
            };
            if claim.0.is_some() && claim.1 >= now {
                return Ok(None);
            }
            *claim = (Some(owner.to_owned()), lease_until, claim.2 + 1);
            Ok(Some(Fence {
                order_id: order_id.to_owned(),
                epoch: claim.2,
            }))
        })
    }

    fn renew<'a>(
        &'a self,
        fence: &'a Fence,
        lease_until: i64,
    ) -> BoxFuture<'a, Result<(), OrderError>> {
        Box::pin(async move {
            let mut s = lock(&self.state);
            s.fenced(fence)?;
            if let Some(claim) = s.claims.get_mut(&fence.order_id) {
                claim.1 = lease_until;
            }
            Ok(())
        })
    }

    fn release<'a>(&'a self, fence: &'a Fence) -> BoxFuture<'a, Result<(), OrderError>> {
        Box::pin(async move {
            let mut s = lock(&self.state);
            if s.fenced(fence).is_ok()
                && let Some(claim) = s.claims.get_mut(&fence.order_id)
            {
                *claim = (None, 0, claim.2);
            }
            Ok(())
        })
    }

    fn save<'a>(
        &'a self,
        saga: &'a Saga,
        fence: &'a Fence,
    ) -> BoxFuture<'a, Result<(), OrderError>> {
        Box::pin(async move {
            let mut s = lock(&self.state);
            s.fenced(fence)?;
            s.sagas.insert(saga.order_id.clone(), saga.clone());
            Ok(())
        })
    }

    fn append<'a>(
        &'a self,
        current: &'a Order,
        events: &'a [OrderEvent],
        saga: Option<(&'a Saga, &'a Fence)>,
    ) -> BoxFuture<'a, Result<Order, OrderError>> {
        Box::pin(async move {
            let mut s = lock(&self.state);
            if let Some((_, fence)) = saga {
                s.fenced(fence)?;
            }
            let stream = s.streams.get_mut(&current.id).ok_or(OrderError::NotFound)?;
            if i64::try_from(stream.len()).unwrap_or(i64::MAX) != current.version {
                return Err(OrderError::Conflict);
            }
            stream.extend(events.iter().map(|e| (e.clone(), 2)));
            if let Some((saga, _)) = saga {
                s.sagas.insert(saga.order_id.clone(), saga.clone());
            }
            s.order(&current.id).ok_or(OrderError::NotFound)
        })
    }

    fn saga<'a>(&'a self, order_id: &'a str) -> BoxFuture<'a, Result<Option<Saga>, OrderError>> {
        Box::pin(async move { Ok(self.stored(order_id)) })
    }

    fn order<'a>(&'a self, order_id: &'a str) -> BoxFuture<'a, Result<Option<Order>, OrderError>> {
        Box::pin(async move { Ok(lock(&self.state).order(order_id)) })
    }

    fn due(&self, now: i64, _limit: u64) -> BoxFuture<'_, Result<Vec<String>, OrderError>> {
        Box::pin(async move {
            Ok(lock(&self.state)
                .sagas
                .values()
                .filter(|s| !s.is_done() && !s.is_waiting(now))
                .map(|s| s.order_id.clone())
                .collect())
        })
    }
}

/// Where a reservation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Stock held.
    Held,
    /// Stock sold.
    Sold,
    /// Stock returned.
    Released,
}

/// Participants in memory: one product, its stock, and payments by key.
#[derive(Debug)]
pub struct FakeParticipants {
    state: Mutex<World>,
}

/// What the fake participants hold.
#[derive(Debug, Default)]
pub struct World {
    /// Units on hand of the one product `p1`.
    pub on_hand: i32,
    /// Reservations by id.
    pub holds: HashMap<String, (Hold, i32)>,
    /// Payments by charge key: (payment id, refunded).
    pub payments: HashMap<String, (String, bool)>,
    /// Commands received, by name.
    pub calls: Vec<&'static str>,
    /// Commands answered Unreachable (never sent) while this is above zero.
    pub away_for: u32,
    /// Commands (by name) answered Unreachable (maybe sent) for as long as they are here.
    pub away: Vec<&'static str>,
    /// Refunds are refused.
    pub refuse_refunds: bool,
    /// Confirmations find the hold lapsed.
    pub lapse_confirms: bool,
    /// The catalog does not answer.
    pub catalog_away: bool,
    /// The next command with this index (into `calls`) takes effect but its answer is lost
    /// with the process: the call never returns.
    pub crash_at: Option<usize>,
}

impl FakeParticipants {
    /// `on_hand` units of `p1`.
    pub fn new(on_hand: i32) -> Self {
        Self {
            state: Mutex::new(World {
                on_hand,
                ..World::default()
            }),
        }
    }

    /// The world, to look at or change.
    pub fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.state)
    }

    fn apply(w: &mut World, command: &Command) -> Outcome {
        match command {
            Command::Reserve {
                reservation_id,
                items,
            } => {
                if w.holds.contains_key(reservation_id) {
                    return Outcome::Reserved;
                }
                let qty: i32 = items.iter().map(|i| i.quantity).sum();
                if qty > w.on_hand {
                    return Outcome::OutOfStock {
                        detail: "short".into(),
                    };
                }
                w.on_hand -= qty;
                w.holds.insert(reservation_id.clone(), (Hold::Held, qty));
                Outcome::Reserved
            }
            Command::Charge {
                key,
                payment_method_token,
                ..
            } => {
                if payment_method_token == "tok_declined" {
                    return Outcome::Declined {
                        detail: "card_declined".into(),
                    };
                }
                let n = w.payments.len();
                let (id, _) = w
                    .payments
                    .entry(key.clone())
                    .or_insert_with(|| (format!("pay{n}"), false));
                Outcome::Charged {
                    payment_id: id.clone(),
                }
            }
            Command::ConfirmReservation { reservation_id } => match w.holds.get_mut(reservation_id)
            {
                Some((hold @ (Hold::Held | Hold::Sold), _)) if !w.lapse_confirms => {
                    *hold = Hold::Sold;
                    Outcome::ReservationConfirmed
                }
                _ => Outcome::ReservationLapsed {
                    detail: "gone".into(),
                },
            },
            Command::Refund { payment_id, .. } => {
                if w.refuse_refunds {
                    return Outcome::RefundRefused {
                        detail: "refunds are off".into(),
                    };
                }
                for (id, refunded) in w.payments.values_mut() {
                    if id == payment_id {
                        *refunded = true;
                    }
                }
                Outcome::Refunded
            }
            Command::Release { reservation_id, .. } => {
                if let Some((hold, qty)) = w.holds.get_mut(reservation_id)
                    && *hold != Hold::Released
                {
                    *hold = Hold::Released;
                    w.on_hand += *qty;
                }
                Outcome::Released
            }
            Command::VoidCharges { .. } => {
                if w.refuse_refunds {
                    return Outcome::RefundRefused {
                        detail: "refunds are off".into(),
                    };
                }
                for (_, refunded) in w.payments.values_mut() {
                    *refunded = true;
                }
                Outcome::Voided
            }
            Command::Finish => Outcome::Finished,
        }
    }
}

impl Participants for FakeParticipants {
    fn standing<'a>(&'a self, _user_id: &'a str) -> BoxFuture<'a, Result<Standing, Away>> {
        Box::pin(async { Ok(Standing::Active) })
    }

    fn products(&self, ids: Vec<String>) -> BoxFuture<'_, Result<Vec<PricedProduct>, Away>> {
        Box::pin(async move {
            if self.world().catalog_away {
                return Err(Away {
                    detail: "catalog: connection refused".into(),
                });
            }
            Ok(ids
                .into_iter()
                .filter(|id| id == "p1")
                .map(|product_id| PricedProduct {
                    product_id,
                    name: "Mug".into(),
                    active: true,
                    price: Some(Money {
                        amount_minor: 800,
                        currency: "USD".into(),
                    }),
                })
                .collect())
        })
    }

    fn execute<'a>(&'a self, command: &'a Command) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (outcome, crashed) = {
                let mut w = self.world();
                if w.away_for > 0 {
                    w.away_for -= 1;
                    return Outcome::Unreachable {
                        sent: false,
                        detail: "circuit open".into(),
                    };
                }
                if w.away.contains(&command.name()) {
                    return Outcome::Unreachable {
                        sent: true,
                        detail: "deadline exceeded".into(),
                    };
                }
                let index = w.calls.len();
                w.calls.push(command.name());
                let outcome = Self::apply(&mut w, command);
                (outcome, w.crash_at == Some(index))
            };
            if crashed {
                std::future::pending::<()>().await;
            }
            outcome
        })
    }
}

/// A user replica that knows nobody.
#[derive(Debug, Default)]
pub struct NoReplica;

impl AccountReplica for NoReplica {
    fn status<'a>(
        &'a self,
        _user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, OrderError>> {
        Box::pin(async { Ok(None) })
    }
}
