//! Runs sagas: sends the command of a saga's step through the [`Participants`] port, feeds the
//! outcome to the pure state machine (`domain::saga`), writes what it says, and repeats until
//! the saga is done or waits out a backoff. A resumer picks up sagas that are due. Placing
//! (`place_order.rs`) and cancelling (`cancel_order.rs`) start sagas here.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::StreamExt;
use polyshop_platform::flags::Flags;
use rand::Rng;
use tracing::Instrument;

use super::{
    failpoints::Failpoints,
    ports::{AccountReplica, Participants, SagaLog},
};
use crate::domain::{
    Order, OrderError,
    saga::{Command, Now, Outcome, Saga, Step, Timing, Write},
};

/// Sagas driven at once by one resume round.
const RESUME_CONCURRENCY: usize = 16;
/// Sagas one resume round picks up at most.
const RESUME_BATCH: u64 = 512;

/// Marks a saga as driven by one task of this process; dropping it releases the mark.
#[derive(Debug)]
pub(super) struct Driving {
    running: Arc<Mutex<HashSet<String>>>,
    order_id: String,
}

impl Drop for Driving {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.order_id);
    }
}

/// How a drive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drive {
    /// The saga is done.
    Finished,
    /// It waits out a backoff (or another task drives it); the resumer goes on later.
    Stalled,
}

/// Runs sagas over the ports.
#[derive(Debug)]
pub struct SagaRunner {
    pub(super) log: Arc<dyn SagaLog>,
    pub(super) participants: Arc<dyn Participants>,
    pub(super) replica: Arc<dyn AccountReplica>,
    pub(super) flags: Flags,
    pub(super) timing: Timing,
    pub(super) settle: Duration,
    pub(super) failpoints: Failpoints,
    running: Arc<Mutex<HashSet<String>>>,
}

impl SagaRunner {
    /// A runner over the ports, with default timing and no failpoints.
    pub fn new(
        log: Arc<dyn SagaLog>,
        participants: Arc<dyn Participants>,
        replica: Arc<dyn AccountReplica>,
    ) -> Self {
        Self {
            log,
            participants,
            replica,
            flags: Flags::new(&std::collections::BTreeMap::new()),
            timing: Timing::default(),
            settle: Duration::from_secs(2),
            failpoints: Failpoints::default(),
            running: Arc::default(),
        }
    }

    /// Reads feature flags (`order_replica_fallback`) from `flags` instead of the defaults.
    #[must_use]
    pub fn with_flags(mut self, flags: Flags) -> Self {
        self.flags = flags;
        self
    }

    /// Retries steps with `timing`; placing and cancelling answer within `settle`.
    #[must_use]
    pub fn with_timing(mut self, timing: Timing, settle: Duration) -> Self {
        self.timing = timing;
        self.settle = settle;
        self
    }

    /// Arms `failpoints`.
    #[must_use]
    pub fn with_failpoints(mut self, failpoints: Failpoints) -> Self {
        self.failpoints = failpoints;
        self
    }

    /// The saga log (for reads that go with sagas).
    pub fn log(&self) -> &Arc<dyn SagaLog> {
        &self.log
    }

    /// Drives every saga that is due (at start, and periodically), a few at a time.
    pub async fn resume_all(self: &Arc<Self>) {
        let ids = match self
            .log
            .due(polyshop_platform::now_millis(), RESUME_BATCH)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list due sagas");
                return;
            }
        };
        futures::stream::iter(ids)
            .for_each_concurrent(RESUME_CONCURRENCY, |id| async move {
                if let Err(e) = self.drive(&id).await {
                    tracing::error!(order_id = %id, error = %e, "saga resume failed");
                }
            })
            .await;
    }

    /// Runs a stored saga from its step until it finishes or waits.
    ///
    /// # Errors
    /// Storage errors; `UnknownSagaState` for a saga this version cannot run.
    pub async fn drive(&self, order_id: &str) -> Result<Drive, OrderError> {
        let Some(driving) = self.driving(order_id) else {
            return Ok(Drive::Stalled);
        };
        let saga = self.log.saga(order_id).await?.ok_or(OrderError::NotFound)?;
        let order = self
            .log
            .order(order_id)
            .await?
            .ok_or(OrderError::NotFound)?;
        let (saga, _) = self.run(&driving, saga, order).await?;
        Ok(if saga.is_done() {
            Drive::Finished
        } else {
            Drive::Stalled
        })
    }

    /// Marks `order_id` as driven by the caller until the guard drops; `None` if it already is.
    pub(super) fn driving(&self, order_id: &str) -> Option<Driving> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(order_id.to_owned())
            .then(|| Driving {
                running: self.running.clone(),
                order_id: order_id.to_owned(),
            })
    }

    /// Drives `saga` (whose order is `order`) in a task of its own and answers with the order
    /// once the saga is done or `settle` has passed, whichever is first; past `settle` the
    /// order as last stored (PENDING, CANCELLING) while the task goes on. A stored order is
    /// never answered with an error: a failing drive is left to the resumer.
    pub(super) async fn settle(
        self: &Arc<Self>,
        driving: Driving,
        saga: Saga,
        order: Order,
    ) -> Result<Order, OrderError> {
        let runner = self.clone();
        let order_id = order.id.clone();
        let fallback = order.clone();
        // The task carries the caller's span, so the participant calls continue its trace.
        let mut task =
            tokio::spawn(async move { runner.run(&driving, saga, order).await }.in_current_span());
        match tokio::time::timeout(self.settle, &mut task).await {
            Ok(Ok(Ok((_, order)))) => Ok(order),
            Ok(Ok(Err(e))) => {
                tracing::error!(%order_id, error = %e, "saga stopped; the resumer goes on");
                Ok(self
                    .log
                    .order(&order_id)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(fallback))
            }
            Ok(Err(e)) => {
                tracing::error!(%order_id, error = %e, "saga task failed; the resumer goes on");
                Ok(fallback)
            }
            Err(_) => Ok(self
                .log
                .order(&order_id)
                .await
                .ok()
                .flatten()
                .unwrap_or(fallback)),
        }
    }

    /// The steps from `saga`'s until it is done or waits; returns where it stopped and the order
    /// as last written. The saga and the order stay in memory between steps: what a resumed
    /// saga needs is written before the step that needs it (see `domain::saga`), and the caller
    /// holds [`Driving`], so this task is the only writer here (another process's append is
    /// refused by the event store's version check).
    async fn run(
        &self,
        _driving: &Driving,
        mut saga: Saga,
        mut order: Order,
    ) -> Result<(Saga, Order), OrderError> {
        loop {
            if saga.is_done() || saga.is_waiting(polyshop_platform::now_millis()) {
                return Ok((saga, order));
            }
            let step = saga.step;
            let command = saga.command(&order);
            let outcome = match &command {
                Command::Finish => Outcome::Finished,
                c if self.failpoints.refuses(c.name()) => c.refusal("refused by a failpoint"),
                c => self.participants.execute(c).await,
            };
            if let Outcome::Unreachable { sent, detail } = &outcome {
                tracing::warn!(order_id = %saga.order_id, step = step.as_str(), command = command.name(), sent, %detail, "participant away; the saga waits");
            }
            let now = Now {
                at: polyshop_platform::now_millis(),
                jitter: rand::thread_rng().gen_range(0..=1000),
            };
            match saga.advance(&order, outcome, now, &self.timing)? {
                Write::Nothing => {}
                Write::Save => self.log.save(&saga).await?,
                Write::Append(events) => {
                    order = self.log.append(&order, &events, Some(&saga)).await?
                }
            }
            if let Some(why) = &saga.stuck {
                tracing::error!(order_id = %saga.order_id, step = saga.step.as_str(), %why, "saga needs reconciliation");
            }
            self.failpoints.hit(&after(step, &command)).await;
        }
    }
}

/// The failpoint after `command` of `step`: `order.after_reserve`, `order.after_charge`,
/// `order.after_confirm`, `order.cancel.after_refund`, ...
fn after(step: Step, command: &Command) -> String {
    match (step, command) {
        (Step::Confirm, _) => "order.after_confirm".into(),
        (Step::Cancel, c) => format!("order.cancel.after_{}", c.name()),
        (_, c) => format!("order.after_{}", c.name()),
    }
}
