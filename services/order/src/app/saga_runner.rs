//! Runs sagas: sends the command of a saga's step through the [`Participants`] port, feeds the
//! outcome to the pure state machine (`domain::saga`), writes what it says, and repeats until
//! the saga is done or waits out a backoff. A resumer picks up sagas that are due. Placing
//! (`place_order.rs`) and cancelling (`cancel_order.rs`) start sagas here.
//!
//! Any number of instances may run over one database: a driver first claims the saga in the
//! store (a lease that bumps the saga's epoch), renews it while it drives, writes every step
//! fenced by that epoch, and releases it at the end. An instance that is killed or paused past
//! its lease is taken over once the lease runs out, and its late writes fail with `LeaseLost`.

use std::{
    collections::HashSet,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::StreamExt;
use polyshop_platform::flags::Flags;
use rand::Rng;
use tokio::time::Instant;
use tracing::Instrument;

use super::{
    failpoints::Failpoints,
    ports::{AccountReplica, FIRST_EPOCH, Fence, Participants, SagaLog},
};
use crate::domain::{
    Order, OrderError,
    saga::{Command, Now, Outcome, Saga, Step, Timing, Write},
};

/// Sagas driven at once by one resume round.
const RESUME_CONCURRENCY: usize = 16;
/// Sagas one resume round picks up at most.
const RESUME_BATCH: u64 = 512;

/// Marks a saga as driven by one task of this process; dropping it releases the mark. A cheap
/// local guard: it spares a database round trip when this process already drives the saga.
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

/// A saga one task of this process drives: the local mark and the store's claim on it.
#[derive(Debug)]
pub(super) struct Claimed {
    _driving: Driving,
    pub(super) fence: Fence,
    /// When the lease was last extended, by this process's monotonic clock (which goes on
    /// while the process is stopped, so a resumed process knows its lease may be gone).
    renewed: Instant,
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
    /// This instance, as the owner of its claims.
    owner: String,
    lease: Duration,
    renew_every: Duration,
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
            owner: polyshop_platform::new_id(),
            lease: Duration::from_secs(10),
            renew_every: Duration::from_secs(3),
        }
    }

    /// Claims sagas as `owner`: a name no other live process has, and that this process keeps
    /// when it restarts (its host and listen address), so a restarted instance takes its own
    /// unfinished sagas back at once instead of waiting out their leases.
    #[must_use]
    pub fn with_owner(mut self, owner: String) -> Self {
        self.owner = owner;
        self
    }

    /// Claims sagas for `lease` at a time and renews the claim every `renew_every` while
    /// driving (which must be well below `lease`).
    #[must_use]
    pub fn with_lease(mut self, lease: Duration, renew_every: Duration) -> Self {
        self.lease = lease;
        self.renew_every = renew_every;
        self
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

    /// Drives every saga that is due and unclaimed (at start, and periodically), a few at a
    /// time. Instances resume side by side: each saga's claim lets exactly one of them drive it.
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

    /// Runs a stored saga from its step until it finishes or waits; `Stalled` at once if
    /// another task or instance holds it.
    ///
    /// # Errors
    /// Storage errors; `UnknownSagaState` for a saga this version cannot run; `LeaseLost` when
    /// another instance took it over meanwhile.
    pub async fn drive(&self, order_id: &str) -> Result<Drive, OrderError> {
        let Some(mut claimed) = self.claim(order_id).await? else {
            return Ok(Drive::Stalled);
        };
        // Read after the claim: the previous holder's last writes are in.
        let loaded = async {
            let saga = self.log.saga(order_id).await?.ok_or(OrderError::NotFound)?;
            let order = self
                .log
                .order(order_id)
                .await?
                .ok_or(OrderError::NotFound)?;
            self.run(&mut claimed, saga, order).await
        }
        .await;
        self.release(&claimed, loaded.as_ref().err()).await;
        let (saga, _) = loaded?;
        Ok(if saga.is_done() {
            Drive::Finished
        } else {
            Drive::Stalled
        })
    }

    /// Claims the saga of `order_id` for this instance: `None` if a task of this process or
    /// another instance holds it.
    ///
    /// # Errors
    /// Storage errors.
    pub(super) async fn claim(&self, order_id: &str) -> Result<Option<Claimed>, OrderError> {
        let Some(driving) = self.driving(order_id) else {
            return Ok(None);
        };
        let (renewed, now) = (Instant::now(), polyshop_platform::now_millis());
        let until = self.lease_until(now);
        Ok(self
            .log
            .claim(order_id, &self.owner, now, until)
            .await?
            .map(|fence| Claimed {
                _driving: driving,
                fence,
                renewed,
            }))
    }

    /// A lease that starts now: when it began by the monotonic clock, and until when (epoch
    /// ms) it lasts. A new saga is stored claimed with it (see [`Self::created`]), so no resumer
    /// anywhere picks the saga up while the call that placed it drives it.
    pub(super) fn new_lease(&self) -> (Instant, i64) {
        (
            Instant::now(),
            self.lease_until(polyshop_platform::now_millis()),
        )
    }

    /// This instance, as the owner it stores its claims under.
    pub(super) fn owner(&self) -> &str {
        &self.owner
    }

    /// The claim on a saga this instance just stored under a lease from [`Self::new_lease`].
    pub(super) fn created(driving: Driving, order_id: &str, began: Instant) -> Claimed {
        Claimed {
            _driving: driving,
            fence: Fence {
                order_id: order_id.to_owned(),
                epoch: FIRST_EPOCH,
            },
            renewed: began,
        }
    }

    /// Gives up `claimed` unless the drive ended because another instance took it over.
    pub(super) async fn release(&self, claimed: &Claimed, failed: Option<&OrderError>) {
        if let Some(OrderError::LeaseLost { order_id }) = failed {
            tracing::warn!(%order_id, epoch = claimed.fence.epoch, "saga taken over by another instance; stopped driving it");
            return;
        }
        if let Err(e) = self.log.release(&claimed.fence).await {
            // Harmless: the lease runs out by itself and the saga is resumed then.
            tracing::warn!(order_id = %claimed.fence.order_id, error = %e, "cannot release the saga's claim");
        }
    }

    fn lease_until(&self, now: i64) -> i64 {
        let lease = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        now.saturating_add(lease)
    }

    /// Extends `claimed`'s lease if a renewal is due.
    async fn keep(&self, claimed: &mut Claimed) -> Result<(), OrderError> {
        if claimed.renewed.elapsed() < self.renew_every {
            return Ok(());
        }
        let renewed = Instant::now();
        let until = self.lease_until(polyshop_platform::now_millis());
        self.log.renew(&claimed.fence, until).await?;
        claimed.renewed = renewed;
        Ok(())
    }

    /// Awaits `work` (a participant call, which may take several deadlines), renewing
    /// `claimed` meanwhile. If the claim is lost the call is dropped: its command is
    /// idempotent, and the instance that took over sends it again if it needs to.
    async fn renewing<T>(
        &self,
        claimed: &mut Claimed,
        work: impl Future<Output = T>,
    ) -> Result<T, OrderError> {
        let mut work = std::pin::pin!(work);
        loop {
            let next = claimed.renewed + self.renew_every;
            tokio::select! {
                out = &mut work => return Ok(out),
                () = tokio::time::sleep_until(next) => self.keep(claimed).await?,
            }
        }
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
        mut claimed: Claimed,
        saga: Saga,
        order: Order,
    ) -> Result<Order, OrderError> {
        let runner = self.clone();
        let order_id = order.id.clone();
        let fallback = order.clone();
        // The task carries the caller's span, so the participant calls continue its trace.
        let mut task = tokio::spawn(
            async move {
                let ran = runner.run(&mut claimed, saga, order).await;
                runner.release(&claimed, ran.as_ref().err()).await;
                ran
            }
            .in_current_span(),
        );
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
    /// holds the claim, so this task is the only writer: a write after another instance took
    /// the saga over is refused (`LeaseLost`) and ends the run.
    async fn run(
        &self,
        claimed: &mut Claimed,
        mut saga: Saga,
        mut order: Order,
    ) -> Result<(Saga, Order), OrderError> {
        loop {
            if saga.is_done() || saga.is_waiting(polyshop_platform::now_millis()) {
                return Ok((saga, order));
            }
            // Before each command: a process resumed after a pause learns here that it lost
            // the saga, before it sends anything more.
            self.keep(claimed).await?;
            let step = saga.step;
            let command = saga.command(&order);
            let outcome = match &command {
                Command::Finish => Outcome::Finished,
                c if self.failpoints.refuses(c.name()) => c.refusal("refused by a failpoint"),
                c => self.renewing(claimed, self.participants.execute(c)).await?,
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
                Write::Save => self.log.save(&saga, &claimed.fence).await?,
                Write::Append(events) => {
                    order = self
                        .log
                        .append(&order, &events, Some((&saga, &claimed.fence)))
                        .await?
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
