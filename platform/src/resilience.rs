//! Calls to other services that fail well: a deadline on every call, retries with exponential
//! backoff and full jitter only for methods the contract marks idempotent and only for codes
//! worth retrying, and a circuit breaker per upstream (closed → open → half-open) that fails
//! fast while an upstream is down and logs every state change; a bulkhead per upstream caps
//! the calls in flight and the callers waiting for a slot, so one slow upstream cannot tie up
//! every task of the caller.

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use rand::Rng;
use tonic::{Code, Status};

use crate::contract::{self, Idempotency};

/// Breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// One probe call is let through.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

/// A circuit breaker for one upstream: opens after `threshold` consecutive failures, stays open
/// for `cool_down`, then lets one probe through.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: String,
    /// Consecutive failures that open it; runtime configuration may change it.
    threshold: AtomicU32,
    configured_threshold: u32,
    /// How long it stays open, in ms; runtime configuration may change it.
    cool_down_ms: AtomicU64,
    configured_cool_down: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker for upstream `name`, reported as closed from the start so its gauge
    /// exists before it first opens.
    pub fn new(name: &str, threshold: u32, cool_down: Duration) -> Self {
        let breaker = Self {
            name: name.to_owned(),
            threshold: AtomicU32::new(threshold.max(1)),
            configured_threshold: threshold.max(1),
            cool_down_ms: AtomicU64::new(millis(cool_down)),
            configured_cool_down: cool_down,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                opened_at: None,
                probing: false,
            }),
        };
        breaker.report(BreakerState::Closed);
        breaker
    }

    /// Sets the consecutive failures that open the circuit (`None`: as configured), for
    /// runtime configuration; a circuit already open stays open.
    pub fn set_threshold(&self, failures: Option<u32>) {
        let failures = failures.unwrap_or(self.configured_threshold).max(1);
        self.threshold.store(failures, Ordering::Relaxed);
    }

    /// Sets how long an open circuit fails fast before a probe (`None`: as configured).
    pub fn set_cool_down(&self, cool_down: Option<Duration>) {
        let cool_down = cool_down.unwrap_or(self.configured_cool_down);
        self.cool_down_ms
            .store(millis(cool_down), Ordering::Relaxed);
    }

    fn cool_down(&self) -> Duration {
        Duration::from_millis(self.cool_down_ms.load(Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes a state change as a gauge: 0 closed, 1 open, 2 half-open.
    fn report(&self, state: BreakerState) {
        let value = match state {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        };
        crate::metrics::set(
            "polyshop_circuit_breaker_state",
            "Circuit breaker per upstream: 0 closed, 1 open, 2 half-open.",
            &[("upstream", &self.name)],
            value,
        );
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// Counts a call's outcome in `polyshop_circuit_breaker_calls_total{upstream,outcome}`:
    /// `success`, `failure` (counted against the circuit) or `rejected` (refused while open).
    fn count(&self, outcome: &str) {
        crate::metrics::inc(
            "polyshop_circuit_breaker_calls_total",
            "Calls through a circuit breaker per upstream, by outcome: success, failure \
             (counted against the circuit) or rejected (refused while open).",
            &[("upstream", &self.name), ("outcome", outcome)],
        );
    }

    /// Whether a call may go out now.
    pub fn allow(&self) -> bool {
        let allowed = self.admit();
        if !allowed {
            self.count("rejected");
        }
        allowed
    }

    fn admit(&self) -> bool {
        let mut inner = self.lock();
        match inner.state {
            BreakerState::Closed => true,
            BreakerState::Open => {
                if inner
                    .opened_at
                    .is_some_and(|t| t.elapsed() >= self.cool_down())
                {
                    inner.state = BreakerState::HalfOpen;
                    inner.probing = true;
                    tracing::info!(upstream = %self.name, "circuit half-open: probing");
                    self.report(BreakerState::HalfOpen);
                    true
                } else {
                    false
                }
            }
            BreakerState::HalfOpen if !inner.probing => {
                inner.probing = true;
                true
            }
            BreakerState::HalfOpen => false,
        }
    }

    /// Records the outcome of a call that was allowed.
    pub fn record(&self, success: bool) {
        self.count(if success { "success" } else { "failure" });
        let mut inner = self.lock();
        inner.probing = false;
        if success {
            if inner.state != BreakerState::Closed {
                tracing::info!(upstream = %self.name, "circuit closed");
                self.report(BreakerState::Closed);
            }
            inner.state = BreakerState::Closed;
            inner.failures = 0;
            return;
        }
        inner.failures += 1;
        if inner.state == BreakerState::HalfOpen
            || inner.failures >= self.threshold.load(Ordering::Relaxed)
        {
            if inner.state != BreakerState::Open {
                tracing::warn!(upstream = %self.name, failures = inner.failures, "circuit opened");
                self.report(BreakerState::Open);
            }
            inner.state = BreakerState::Open;
            inner.opened_at = Some(Instant::now());
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A bulkhead for one upstream: at most `max_concurrent` calls in flight and `max_waiting`
/// callers queued for a slot; a caller beyond that, or one that waited `max_wait`, is refused
/// with RESOURCE_EXHAUSTED at once instead of piling up.
#[derive(Debug)]
pub struct Bulkhead {
    name: String,
    max_concurrent: usize,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

/// A slot in a [`Bulkhead`]; dropping it frees the slot.
#[derive(Debug)]
pub struct BulkheadPermit(#[allow(dead_code)] OwnedSemaphorePermit);

/// Decrements the waiting count however the wait ends (including cancellation).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Bulkhead {
    /// A bulkhead for upstream `name`.
    pub fn new(name: &str, max_concurrent: usize, max_waiting: usize, max_wait: Duration) -> Self {
        Self {
            name: name.to_owned(),
            max_concurrent: max_concurrent.max(1),
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
        }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.max_concurrent
            .saturating_sub(self.slots.available_permits())
    }

    /// A slot, waiting for one if the queue has room.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when the queue is full or the wait ran out.
    pub async fn enter(&self) -> Result<BulkheadPermit, Status> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(BulkheadPermit(permit));
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        if queued >= self.max_waiting {
            tracing::warn!(upstream = %self.name, "bulkhead full: call refused");
            self.refused();
            return Err(Status::resource_exhausted(format!(
                "too many calls to {} in flight",
                self.name
            )));
        }
        match tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(BulkheadPermit(permit)),
            _ => {
                self.refused();
                Err(Status::resource_exhausted(format!(
                    "no free slot for a call to {} in time",
                    self.name
                )))
            }
        }
    }

    fn refused(&self) {
        crate::metrics::inc(
            "polyshop_bulkhead_refused_total",
            "Calls a bulkhead refused (queue full or no slot in time), by upstream.",
            &[("upstream", &self.name)],
        );
    }
}

/// Retry timing.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, including the first.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
    /// Deadline of each attempt.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(3),
        }
    }
}

/// Codes that say the upstream is unhealthy (they count against the breaker).
pub fn is_upstream_failure(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Internal
            | Code::ResourceExhausted
    )
}

/// Codes worth another attempt when the method is idempotent.
pub fn is_retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted
    )
}

/// Whether the contract allows retrying the method at gRPC `path`.
pub fn may_retry(path: &str) -> bool {
    contract::rule(path).is_some_and(|r| r.idempotency != Idempotency::Unknown)
}

/// Why a protected call failed: callers that must know whether the request may have reached
/// the upstream (a charge, say) match on this, never on a status message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Refused before anything was sent: the breaker is open or the bulkhead is full.
    #[error("not sent: {}", .0.message())]
    NotSent(Status),
    /// Sent at least once; this is the last attempt's status.
    #[error("{}", .0.message())]
    Failed(Status),
}

impl CallError {
    /// The status the caller would pass on.
    pub fn status(&self) -> &Status {
        match self {
            Self::NotSent(s) | Self::Failed(s) => s,
        }
    }

    /// Whether the request may have reached the upstream.
    pub fn may_have_been_sent(&self) -> bool {
        matches!(self, Self::Failed(_))
    }
}

impl From<CallError> for Status {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NotSent(s) | CallError::Failed(s) => s,
        }
    }
}

/// Calls `attempt` under `breaker` with a deadline, retrying per `policy` when `path` is
/// idempotent and the failure is retryable.
///
/// # Errors
/// [`CallError::Failed`] with the last status; [`CallError::NotSent`] (UNAVAILABLE) at once
/// while the breaker is open and nothing was sent yet.
pub async fn call<T, F, Fut>(
    breaker: &CircuitBreaker,
    policy: &RetryPolicy,
    path: &str,
    mut attempt: F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let retry_allowed = may_retry(path);
    let mut delay = policy.base_delay;
    let mut tries = 0;
    loop {
        tries += 1;
        if !breaker.allow() {
            let status =
                Status::unavailable(format!("{} is unavailable (circuit open)", breaker.name));
            // An earlier attempt of this call may have reached it.
            return Err(if tries == 1 {
                CallError::NotSent(status)
            } else {
                CallError::Failed(status)
            });
        }
        let result = match tokio::time::timeout(policy.attempt_timeout, attempt()).await {
            Ok(result) => result,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "{} did not answer in time",
                breaker.name
            ))),
        };
        match result {
            Ok(value) => {
                breaker.record(true);
                return Ok(value);
            }
            Err(status) => {
                breaker.record(!is_upstream_failure(status.code()));
                if !(retry_allowed && is_retryable(status.code()) && tries < policy.max_attempts) {
                    return Err(CallError::Failed(status));
                }
                let jittered = rand::thread_rng().gen_range(Duration::ZERO..=delay);
                tracing::debug!(upstream = %breaker.name, %path, code = ?status.code(), retry_in_ms = jittered.as_millis() as u64, "retrying");
                tokio::time::sleep(jittered).await;
                delay = (delay * 2).min(policy.max_delay);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const IDEMPOTENT: &str = "/polyshop.inventory.v1.InventoryService/ReserveStock";
    const NOT_IDEMPOTENT: &str = "/polyshop.order.v1.OrderService/CreateOrder";

    fn quick() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            attempt_timeout: Duration::from_millis(200),
        }
    }

    #[tokio::test]
    async fn idempotent_calls_are_retried_on_unavailable() {
        let breaker = CircuitBreaker::new("x", 10, Duration::from_secs(1));
        let calls = AtomicU32::new(0);
        let result = call(&breaker, &quick(), IDEMPOTENT, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(Status::unavailable("down"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(result.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn non_idempotent_calls_and_business_errors_are_not_retried() {
        let breaker = CircuitBreaker::new("x", 10, Duration::from_secs(1));
        let calls = AtomicU32::new(0);
        let _ = call(&breaker, &quick(), NOT_IDEMPOTENT, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Status::unavailable("down"))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let _ = call(&breaker, &quick(), IDEMPOTENT, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Status::failed_precondition("no stock"))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_breaker_opens_fails_fast_and_closes_after_a_good_probe() {
        let breaker = CircuitBreaker::new("payment", 2, Duration::from_millis(50));
        for _ in 0..2 {
            let _ = call(&breaker, &quick(), NOT_IDEMPOTENT, || async {
                Err::<(), _>(Status::unavailable("down"))
            })
            .await;
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        let calls = AtomicU32::new(0);
        let err = call(&breaker, &quick(), NOT_IDEMPOTENT, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(
            (err.status().code(), calls.load(Ordering::SeqCst)),
            (Code::Unavailable, 0),
            "fails fast while open"
        );
        assert!(!err.may_have_been_sent(), "typed: refused before sending");
        tokio::time::sleep(Duration::from_millis(60)).await;
        call(&breaker, &quick(), NOT_IDEMPOTENT, || async { Ok(()) })
            .await
            .expect("probe passes");
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_full_bulkhead_queues_then_refuses_and_frees_slots_on_drop() {
        let bulkhead = Bulkhead::new("payment", 2, 1, Duration::from_millis(50));
        let a = bulkhead.enter().await.expect("first slot");
        let _b = bulkhead.enter().await.expect("second slot");
        assert_eq!(bulkhead.in_flight(), 2);
        // One caller may wait; it gets the slot `a` frees.
        let waiter = async { bulkhead.enter().await };
        let release = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            // A second waiter finds the queue full and is refused at once.
            let refused = bulkhead.enter().await.expect_err("queue full");
            drop(a);
            refused
        };
        let (waited, refused) = tokio::join!(waiter, release);
        assert_eq!(refused.code(), Code::ResourceExhausted);
        let _c = waited.expect("the waiter gets the freed slot");
        // Nobody frees a slot now: a waiter gives up after max_wait.
        let timed_out = bulkhead.enter().await.expect_err("no slot in time");
        assert_eq!(timed_out.code(), Code::ResourceExhausted);
        assert_eq!(
            bulkhead.waiting.load(Ordering::Acquire),
            0,
            "no waiter leaked"
        );
    }

    #[tokio::test]
    async fn a_tuned_threshold_and_cool_down_apply_to_the_next_calls_and_revert() {
        let breaker = CircuitBreaker::new("tuned", 5, Duration::from_secs(60));
        breaker.set_threshold(Some(1));
        breaker.set_cool_down(Some(Duration::from_millis(10)));
        breaker.record(false);
        assert_eq!(
            breaker.state(),
            BreakerState::Open,
            "one failure opens it now"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(breaker.allow(), "the short cool-down let a probe through");
        breaker.record(true);
        breaker.set_threshold(None);
        breaker.set_cool_down(None);
        for _ in 0..4 {
            breaker.record(false);
        }
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "five again, as configured"
        );
    }

    #[tokio::test]
    async fn a_failed_probe_reopens_the_breaker() {
        let breaker = CircuitBreaker::new("payment", 1, Duration::from_millis(20));
        breaker.record(false);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(breaker.allow());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(!breaker.allow(), "only one probe at a time");
        breaker.record(false);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    /// The value of `polyshop_circuit_breaker_state{upstream="<name>"}` in the exposition.
    fn breaker_gauge(name: &str) -> Option<String> {
        let prefix = format!("polyshop_circuit_breaker_state{{upstream=\"{name}\"}} ");
        crate::metrics::render()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
    }

    #[tokio::test]
    async fn the_breaker_state_gauge_follows_closed_open_half_open_and_closed_again() {
        let name = "gauge-test-upstream";
        let breaker = CircuitBreaker::new(name, 2, Duration::from_millis(20));
        assert_eq!(
            breaker_gauge(name).as_deref(),
            Some("0.0"),
            "closed from the start"
        );
        breaker.record(false);
        assert_eq!(
            breaker_gauge(name).as_deref(),
            Some("0.0"),
            "below the threshold"
        );
        breaker.record(false);
        assert_eq!(breaker_gauge(name).as_deref(), Some("1.0"), "open");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(breaker.allow());
        assert_eq!(breaker_gauge(name).as_deref(), Some("2.0"), "half-open");
        breaker.record(true);
        assert_eq!(breaker_gauge(name).as_deref(), Some("0.0"), "closed again");
    }
}
