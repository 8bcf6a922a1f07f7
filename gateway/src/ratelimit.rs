//! Token buckets per principal (user id, else client IP) and class. Every answer carries the
//! IETF `RateLimit-Policy` / `RateLimit` headers; a refusal adds `Retry-After` (HTTP) or
//! RESOURCE_EXHAUSTED with RetryInfo (gRPC).

use std::{
    collections::HashMap,
    sync::Mutex,
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
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// Refills for the time passed, then takes one token if there is one.
    fn take(&mut self, policy: &Policy, now: Instant) -> (bool, f64) {
        let refill = now.duration_since(self.updated).as_secs_f64() * policy.per_sec;
        self.tokens = (self.tokens + refill).min(policy.burst);
        self.updated = now;
        let allowed = self.tokens >= 1.0;
        if allowed {
            self.tokens -= 1.0;
        }
        (allowed, self.tokens)
    }

    fn is_full(&self, policy: &Policy, now: Instant) -> bool {
        self.tokens + now.duration_since(self.updated).as_secs_f64() * policy.per_sec
            >= policy.burst
    }
}

#[derive(Debug)]
struct State {
    standard: HashMap<String, Bucket>,
    credentials: HashMap<String, Bucket>,
    swept: Instant,
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
                standard: HashMap::new(),
                credentials: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    fn policy(&self, class: LimitClass) -> Policy {
        match class {
            LimitClass::Standard => self.standard,
            LimitClass::Credentials => self.credentials,
        }
    }

    /// Takes one token from `key`'s bucket of `class`.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED (429) with `Retry-After` when the bucket is empty.
    pub fn check(&self, class: LimitClass, key: &str) -> Result<Verdict, EdgeError> {
        let policy = self.policy(class);
        if policy.burst <= 0.0 {
            return Ok(Verdict {
                headers: HeaderMap::new(),
            });
        }
        let now = Instant::now();
        let (allowed, tokens) = {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if now.duration_since(state.swept) > SWEEP_EVERY {
                let (standard, credentials) = (self.standard, self.credentials);
                state.standard.retain(|_, b| !b.is_full(&standard, now));
                state
                    .credentials
                    .retain(|_, b| !b.is_full(&credentials, now));
                state.swept = now;
            }
            let buckets = match class {
                LimitClass::Standard => &mut state.standard,
                LimitClass::Credentials => &mut state.credentials,
            };
            match buckets.get_mut(key) {
                Some(bucket) => bucket.take(&policy, now),
                None => {
                    let mut bucket = Bucket {
                        tokens: policy.burst,
                        updated: now,
                    };
                    let verdict = bucket.take(&policy, now);
                    buckets.insert(key.to_owned(), bucket);
                    verdict
                }
            }
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
}
