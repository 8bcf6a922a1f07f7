//! Token buckets per principal (user id, else client IP) and class. Every answer carries the
//! IETF `RateLimit-Policy` / `RateLimit` headers; a refusal adds `Retry-After` (HTTP) or
//! RESOURCE_EXHAUSTED with RetryInfo (gRPC).
//!
//! Behind a load balancer every edge keeps its own buckets; [`share`] tells the other edges
//! what this one admitted and debits what they admitted, so a principal gets its rate once
//! over all edges rather than once per edge.

pub mod share;

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use http::{HeaderMap, HeaderValue};
use polyshop_platform::config::GatewaySettings;

use crate::{errors::EdgeError, routes::LimitClass};

/// Buckets untouched for this long are full again and are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One class's refill rate and burst. A burst of 0 turns the class's limit off.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    name: &'static str,
    per_sec: f64,
    burst: f64,
}

impl Policy {
    fn window_secs(&self) -> u64 {
        if self.per_sec > 0.0 {
            (self.burst / self.per_sec).ceil().max(1.0) as u64
        } else {
            3600
        }
    }

    fn is_unlimited(&self) -> bool {
        self.burst <= 0.0
    }
}

#[derive(Debug)]
struct Bucket {
    /// Below zero when other edges admitted more than this bucket held: a debt that refill
    /// pays off before the next local request passes.
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refill(&mut self, policy: &Policy, now: Instant) {
        let refill = now.saturating_duration_since(self.updated).as_secs_f64() * policy.per_sec;
        self.tokens = (self.tokens + refill).min(policy.burst);
        self.updated = self.updated.max(now);
    }

    /// Refills for the time passed, then takes one token if there is one.
    fn take(&mut self, policy: &Policy, now: Instant) -> (bool, f64) {
        self.refill(policy, now);
        let allowed = self.tokens >= 1.0;
        if allowed {
            self.tokens -= 1.0;
        }
        (allowed, self.tokens)
    }

    /// Takes `n` tokens admitted elsewhere, into debt if need be: they were spent already.
    fn debit(&mut self, policy: &Policy, n: f64, now: Instant) {
        self.refill(policy, now);
        self.tokens -= n;
    }

    fn is_full(&self, policy: &Policy, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.updated).as_secs_f64() * policy.per_sec
            >= policy.burst
    }
}

/// One class's buckets, and what passed since the other edges were last told.
#[derive(Debug, Default)]
struct Class {
    buckets: HashMap<String, Bucket>,
    admitted: HashMap<String, u32>,
}

impl Class {
    /// Runs `f` on `key`'s bucket, a full one if it has none yet.
    fn with_bucket<R>(
        &mut self,
        key: &str,
        policy: &Policy,
        now: Instant,
        f: impl FnOnce(&mut Bucket) -> R,
    ) -> R {
        if let Some(bucket) = self.buckets.get_mut(key) {
            return f(bucket);
        }
        let mut bucket = Bucket {
            tokens: policy.burst,
            updated: now,
        };
        let result = f(&mut bucket);
        self.buckets.insert(key.to_owned(), bucket);
        result
    }
}

#[derive(Debug)]
struct State {
    standard: Class,
    credentials: Class,
    swept: Instant,
    /// Whether admissions are counted for [`share`]; off when no one drains the counts.
    counting: bool,
}

impl State {
    fn class(&mut self, class: LimitClass) -> &mut Class {
        match class {
            LimitClass::Standard => &mut self.standard,
            LimitClass::Credentials => &mut self.credentials,
        }
    }
}

/// The edge's rate limiter.
#[derive(Debug)]
pub struct RateLimiter {
    standard: Policy,
    credentials: Policy,
    state: Mutex<State>,
}

/// What a check decided, with the headers to answer with.
#[derive(Debug)]
pub struct Verdict {
    /// `RateLimit-Policy` and `RateLimit` (and nothing when the class is unlimited).
    pub headers: HeaderMap,
}

impl RateLimiter {
    /// A limiter with the configured buckets.
    pub fn new(settings: &GatewaySettings) -> Self {
        Self {
            standard: Policy {
                name: "standard",
                per_sec: f64::from(settings.rate_per_sec),
                burst: f64::from(settings.rate_burst),
            },
            credentials: Policy {
                name: "credentials",
                per_sec: f64::from(settings.auth_rate_per_sec),
                burst: f64::from(settings.auth_rate_burst),
            },
            state: Mutex::new(State {
                standard: Class::default(),
                credentials: Class::default(),
                swept: Instant::now(),
                counting: false,
            }),
        }
    }

    fn policy(&self, class: LimitClass) -> Policy {
        match class {
            LimitClass::Standard => self.standard,
            LimitClass::Credentials => self.credentials,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes one token from `key`'s bucket of `class`.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED (429) with `Retry-After` when the bucket is empty.
    pub fn check(&self, class: LimitClass, key: &str) -> Result<Verdict, EdgeError> {
        self.check_at(class, key, Instant::now())
    }

    fn check_at(&self, class: LimitClass, key: &str, now: Instant) -> Result<Verdict, EdgeError> {
        let policy = self.policy(class);
        if policy.is_unlimited() {
            return Ok(Verdict {
                headers: HeaderMap::new(),
            });
        }
        let (allowed, tokens) = {
            let mut state = self.lock();
            if now.saturating_duration_since(state.swept) > SWEEP_EVERY {
                let (standard, credentials) = (self.standard, self.credentials);
                state
                    .standard
                    .buckets
                    .retain(|_, b| !b.is_full(&standard, now));
                state
                    .credentials
                    .buckets
                    .retain(|_, b| !b.is_full(&credentials, now));
                state.swept = now;
            }
            let counting = state.counting;
            let limits = state.class(class);
            let verdict = limits.with_bucket(key, &policy, now, |b| b.take(&policy, now));
            if verdict.0 && counting {
                match limits.admitted.get_mut(key) {
                    Some(n) => *n += 1,
                    None => {
                        limits.admitted.insert(key.to_owned(), 1);
                    }
                }
            }
            verdict
        };
        let wait = if policy.per_sec > 0.0 {
            Duration::from_secs_f64(((1.0 - tokens).max(0.0)) / policy.per_sec)
        } else {
            Duration::from_secs(3600)
        };
        let headers = headers(&policy, tokens, wait);
        if allowed {
            Ok(Verdict { headers })
        } else {
            Err(EdgeError::rate_limited(wait, headers))
        }
    }

    /// Starts or stops counting admissions for [`RateLimiter::take_admitted`].
    fn count_admissions(&self, on: bool) {
        let mut state = self.lock();
        state.counting = on;
        if !on {
            state.standard.admitted.clear();
            state.credentials.admitted.clear();
        }
    }

    /// What `class` admitted per key since the last call (while counting), and forgets it.
    fn take_admitted(&self, class: LimitClass) -> HashMap<String, u32> {
        std::mem::take(&mut self.lock().class(class).admitted)
    }

    /// Takes `n` tokens that another edge admitted from `key`'s bucket of `class`.
    fn debit(&self, class: LimitClass, key: &str, n: u32, now: Instant) {
        let policy = self.policy(class);
        if policy.is_unlimited() || n == 0 {
            return;
        }
        self.lock()
            .class(class)
            .with_bucket(key, &policy, now, |b| b.debit(&policy, f64::from(n), now));
    }
}

fn headers(policy: &Policy, tokens: f64, wait: Duration) -> HeaderMap {
    let mut h = HeaderMap::new();
    let policy_value = format!(
        "\"{}\";q={};w={}",
        policy.name,
        policy.burst as u64,
        policy.window_secs()
    );
    let reset = if tokens >= 1.0 { 0 } else { wait.as_secs() + 1 };
    let now_value = format!(
        "\"{}\";r={};t={}",
        policy.name,
        tokens.max(0.0).floor() as u64,
        reset
    );
    if let (Ok(p), Ok(n)) = (
        HeaderValue::from_str(&policy_value),
        HeaderValue::from_str(&now_value),
    ) {
        h.insert("ratelimit-policy", p);
        h.insert("ratelimit", n);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32) -> RateLimiter {
        RateLimiter::new(&GatewaySettings {
            rate_per_sec: 1,
            rate_burst: burst,
            auth_rate_per_sec: 1,
            auth_rate_burst: 2,
            ..GatewaySettings::default()
        })
    }

    #[test]
    fn the_burst_passes_then_the_next_call_is_refused_with_a_retry_delay() {
        let l = limiter(3);
        for _ in 0..3 {
            l.check(LimitClass::Standard, "ip:1").expect("within burst");
        }
        let refused = l
            .check(LimitClass::Standard, "ip:1")
            .expect_err("over burst");
        let response = refused.into_json();
        assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key(http::header::RETRY_AFTER));
        assert!(response.headers().contains_key("ratelimit-policy"));
        // Other principals and classes have their own buckets.
        l.check(LimitClass::Standard, "ip:2").expect("another key");
        l.check(LimitClass::Credentials, "ip:1")
            .expect("another class");
    }

    #[test]
    fn a_zero_burst_turns_the_limit_off() {
        let l = limiter(0);
        for _ in 0..1000 {
            l.check(LimitClass::Standard, "k").expect("unlimited");
        }
    }

    #[test]
    fn debits_from_other_edges_drain_the_bucket() {
        let l = limiter(5);
        let now = Instant::now();
        l.check_at(LimitClass::Standard, "ip:1", now)
            .expect("a full bucket");
        l.debit(LimitClass::Standard, "ip:1", 4, now);
        l.check_at(LimitClass::Standard, "ip:1", now)
            .expect_err("5 spent over two edges");
        // A key this edge has not seen starts from a full bucket less the debit.
        l.debit(LimitClass::Standard, "ip:2", 5, now);
        l.check_at(LimitClass::Standard, "ip:2", now)
            .expect_err("spent elsewhere");
    }

    #[test]
    fn a_debt_is_paid_off_by_refill_before_the_next_request_passes() {
        let l = limiter(5);
        let now = Instant::now();
        // 8 admitted elsewhere from a bucket of 5: 3 tokens in debt, refilled at 1 a second.
        l.debit(LimitClass::Standard, "ip:1", 8, now);
        let refused = l
            .check_at(
                LimitClass::Standard,
                "ip:1",
                now + Duration::from_millis(3_900),
            )
            .expect_err("still paying off the debt");
        let response = refused.into_json();
        let retry = &response.headers()[http::header::RETRY_AFTER];
        assert_eq!(retry, "1", "a tenth of a token to go");
        assert!(
            response.headers()["ratelimit"]
                .to_str()
                .is_ok_and(|v| v.contains("r=0;")),
            "remaining never shows below zero: {:?}",
            response.headers()["ratelimit"]
        );
        l.check_at(
            LimitClass::Standard,
            "ip:1",
            now + Duration::from_millis(4_100),
        )
        .expect("debt paid, one token refilled");
    }

    #[test]
    fn admissions_are_counted_only_while_shared_and_remote_debits_are_not_counted() {
        let l = limiter(5);
        l.check(LimitClass::Standard, "ip:1").expect("within burst");
        assert!(l.take_admitted(LimitClass::Standard).is_empty());
        l.count_admissions(true);
        l.check(LimitClass::Standard, "ip:1").expect("within burst");
        l.check(LimitClass::Standard, "ip:1").expect("within burst");
        l.debit(LimitClass::Standard, "ip:1", 2, Instant::now());
        l.check(LimitClass::Standard, "ip:1")
            .expect_err("1 + 2 local + 2 remote");
        l.check(LimitClass::Credentials, "ip:1").expect("own class");
        let standard = l.take_admitted(LimitClass::Standard);
        assert_eq!(standard, HashMap::from([("ip:1".to_owned(), 2)]));
        assert!(l.take_admitted(LimitClass::Standard).is_empty(), "taken");
        assert_eq!(l.take_admitted(LimitClass::Credentials).len(), 1);
    }
}
