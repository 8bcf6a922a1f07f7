//! Token buckets per principal (user id, else client IP) and class. Every answer carries the
//! IETF `RateLimit-Policy` / `RateLimit` headers; a refusal adds `Retry-After` (HTTP) or
//! RESOURCE_EXHAUSTED with RetryInfo (gRPC).
//!
//! Login and register also draw from a bucket per account named in the request, so spreading
//! guesses for one account over many addresses does not multiply its rate ([`client`] finds
//! the account, the client's address and its key).
//!
//! The buckets live in a sharded map of at most `gateway.rate_max_keys` keys: a full shard
//! first drops full buckets (they are no different from absent ones), then the least recently
//! used, down to three quarters of its bound, so the O(shard) pass that makes room comes at
//! most once per quarter-shard of new keys and a check stays O(1) amortised.
//!
//! Behind a load balancer every edge keeps its own buckets; [`share`] tells the other edges
//! what this one admitted and debits what they admitted, so a principal gets its rate once
//! over all edges rather than once per edge.

pub mod client;
pub mod in_flight;
pub mod share;

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http::{HeaderMap, HeaderValue};
use polyshop_platform::{config::GatewaySettings, runtime_config::Value as RuntimeValue};

use crate::{errors::EdgeError, routes::LimitClass};

/// Buckets untouched for this long are full again and are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Shards of the bucket map: a check locks one, so concurrent checks rarely wait on each other.
const SHARDS: usize = 16;

/// What a bucket limits: a class of methods per principal, or logins per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Standard,
    Credentials,
    Account,
}

impl Kind {
    const ALL: [Self; 3] = [Self::Standard, Self::Credentials, Self::Account];

    fn index(self) -> usize {
        self as usize
    }
}

impl From<LimitClass> for Kind {
    fn from(class: LimitClass) -> Self {
        match class {
            LimitClass::Standard => Self::Standard,
            LimitClass::Credentials => Self::Credentials,
        }
    }
}

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

/// One shard: its buckets per kind, and what passed since the other edges were last told.
#[derive(Debug)]
struct Shard {
    buckets: [HashMap<String, Bucket>; 3],
    admitted: [HashMap<String, u32>; 3],
    swept: Instant,
}

impl Shard {
    fn new(now: Instant) -> Self {
        Self {
            buckets: Default::default(),
            admitted: Default::default(),
            swept: now,
        }
    }

    fn len(&self) -> usize {
        self.buckets.iter().map(HashMap::len).sum()
    }

    /// Runs `f` on `key`'s bucket of `kind`, a full one if it has none yet, making room first
    /// when the shard holds `bound` keys.
    fn with_bucket<R>(
        &mut self,
        kind: Kind,
        key: &str,
        policies: &[Policy; 3],
        bound: usize,
        now: Instant,
        f: impl FnOnce(&mut Bucket) -> R,
    ) -> R {
        if let Some(bucket) = self.buckets[kind.index()].get_mut(key) {
            return f(bucket);
        }
        if self.len() >= bound {
            self.make_room(policies, bound, now);
        }
        let mut bucket = Bucket {
            tokens: policies[kind.index()].burst,
            updated: now,
        };
        let result = f(&mut bucket);
        self.buckets[kind.index()].insert(key.to_owned(), bucket);
        result
    }

    fn drop_full(&mut self, policies: &[Policy; 3], now: Instant) {
        for (buckets, policy) in self.buckets.iter_mut().zip(policies) {
            buckets.retain(|_, b| !b.is_full(policy, now));
        }
    }

    /// Brings the shard down to three quarters of `bound`: full buckets first, then the least
    /// recently used.
    fn make_room(&mut self, policies: &[Policy; 3], bound: usize, now: Instant) {
        self.drop_full(policies, now);
        self.swept = now;
        let target = bound - (bound / 4).max(1);
        let len = self.len();
        if len <= target {
            return;
        }
        let excess = len - target;
        let mut ages: Vec<Instant> = self
            .buckets
            .iter()
            .flat_map(|m| m.values().map(|b| b.updated))
            .collect();
        let (_, &mut cutoff, _) = ages.select_nth_unstable(excess - 1);
        // Counted, because many buckets can share the cutoff instant.
        let mut evicted = 0;
        for buckets in &mut self.buckets {
            buckets.retain(|_, b| {
                let evict = evicted < excess && b.updated <= cutoff;
                evicted += usize::from(evict);
                !evict
            });
        }
    }
}

/// A class's rate and burst as one word, so a runtime change (`polyshop admin config set
/// gateway rate_burst …`) swaps both at once and a check reads them with one relaxed load:
/// the rate's `f32` bits high, the burst's low (`f32` holds every whole number up to 2²⁴
/// exactly, far above any burst or rate the config accepts).
#[derive(Debug)]
struct PolicyCell {
    name: &'static str,
    bits: AtomicU64,
}

impl PolicyCell {
    fn new(policy: Policy) -> Self {
        Self {
            name: policy.name,
            bits: AtomicU64::new(Self::pack(policy.per_sec, policy.burst)),
        }
    }

    fn pack(per_sec: f64, burst: f64) -> u64 {
        (u64::from((per_sec as f32).to_bits()) << 32) | u64::from((burst as f32).to_bits())
    }

    fn load(&self) -> Policy {
        let bits = self.bits.load(Ordering::Relaxed);
        Policy {
            name: self.name,
            per_sec: f64::from(f32::from_bits((bits >> 32) as u32)),
            burst: f64::from(f32::from_bits(bits as u32)),
        }
    }

    /// Replaces the rate, the burst or both (`None` keeps it).
    fn set(&self, per_sec: Option<f64>, burst: Option<f64>) {
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = Policy {
                    name: self.name,
                    per_sec: f64::from(f32::from_bits((bits >> 32) as u32)),
                    burst: f64::from(f32::from_bits(bits as u32)),
                };
                Some(Self::pack(
                    per_sec.unwrap_or(old.per_sec).max(0.0),
                    burst.unwrap_or(old.burst).max(0.0),
                ))
            });
    }
}

/// The edge's rate limiter.
#[derive(Debug)]
pub struct RateLimiter {
    /// What the configuration says, for a runtime setting that is cleared.
    configured: [Policy; 3],
    /// What is in force: the configured policies, or what the runtime configuration set.
    policies: [PolicyCell; 3],
    shards: Box<[Mutex<Shard>]>,
    /// Keys one shard may hold.
    shard_bound: usize,
    hasher: RandomState,
    /// Whether admissions are counted for [`share`]; off when no one drains the counts.
    counting: AtomicBool,
    /// Who may say, in `X-Forwarded-For`, which client a request comes from.
    pub proxies: client::TrustedProxies,
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
        let now = Instant::now();
        let shards = if settings.rate_max_keys >= SHARDS * 64 {
            SHARDS
        } else {
            1
        };
        let configured = [
            Policy {
                name: "standard",
                per_sec: f64::from(settings.rate_per_sec),
                burst: f64::from(settings.rate_burst),
            },
            Policy {
                name: "credentials",
                per_sec: f64::from(settings.auth_rate_per_sec),
                burst: f64::from(settings.auth_rate_burst),
            },
            Policy {
                name: "account",
                per_sec: settings.account_rate_per_sec.max(0.0),
                burst: f64::from(settings.account_rate_burst),
            },
        ];
        Self {
            configured,
            policies: configured.map(PolicyCell::new),
            shards: (0..shards).map(|_| Mutex::new(Shard::new(now))).collect(),
            shard_bound: (settings.rate_max_keys / shards).max(1),
            hasher: RandomState::new(),
            counting: AtomicBool::new(false),
            proxies: client::TrustedProxies::new(&settings.trusted_proxies),
        }
    }

    fn policies(&self) -> [Policy; 3] {
        [0, 1, 2].map(|i| self.policies[i].load())
    }

    /// Applies the runtime setting `setting` (one of the edge's rate settings in
    /// `polyshop_platform::runtime_config::KNOWN`): `None` brings the configured value back.
    /// Buckets keep their tokens: a lower burst caps them at the next check, a higher one
    /// lets them refill to it at the rate in force.
    ///
    /// # Errors
    /// A setting this limiter does not have, or a value of the wrong kind.
    pub fn apply_setting(&self, setting: &str, value: Option<&RuntimeValue>) -> Result<(), String> {
        let (kind, is_rate) = match setting {
            "rate_per_sec" => (Kind::Standard, true),
            "rate_burst" => (Kind::Standard, false),
            "auth_rate_per_sec" => (Kind::Credentials, true),
            "auth_rate_burst" => (Kind::Credentials, false),
            "account_rate_per_sec" => (Kind::Account, true),
            "account_rate_burst" => (Kind::Account, false),
            _ => return Err(format!("{setting} is not a rate limit")),
        };
        let configured = self.configured[kind.index()];
        let number = match (value, is_rate) {
            (None, true) => configured.per_sec,
            (None, false) => configured.burst,
            (Some(RuntimeValue::Rate(r)), true) if r.is_finite() && *r >= 0.0 => *r,
            (Some(RuntimeValue::Count(n)), false) => f64::from(*n),
            (Some(other), _) => return Err(format!("{other} is no value of {setting}")),
        };
        let cell = &self.policies[kind.index()];
        if is_rate {
            cell.set(Some(number), None);
        } else {
            cell.set(None, Some(number));
        }
        Ok(())
    }

    fn shard(&self, kind: Kind, key: &str) -> MutexGuard<'_, Shard> {
        let i = if self.shards.len() == 1 {
            0
        } else {
            (self.hasher.hash_one((kind.index(), key)) % self.shards.len() as u64) as usize
        };
        self.shards[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keys held over all shards.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len()
            })
            .sum()
    }

    /// Takes one token from `key`'s bucket of `class`.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED (429) with `Retry-After` when the bucket is empty.
    pub fn check(&self, class: LimitClass, key: &str) -> Result<Verdict, EdgeError> {
        self.check_at(class.into(), key, Instant::now())
    }

    /// Takes one token from the bucket of the account a login or register names (`account`,
    /// as [`client::account`] finds it); nothing when the request names none.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED (429) with `Retry-After` when the account's bucket is empty.
    pub fn check_account(&self, account: Option<&str>) -> Result<(), EdgeError> {
        match account {
            Some(name) => self
                .check_at(Kind::Account, &client::account_key(name), Instant::now())
                .map(drop),
            None => Ok(()),
        }
    }

    fn check_at(&self, kind: Kind, key: &str, now: Instant) -> Result<Verdict, EdgeError> {
        let policies = self.policies();
        let policy = policies[kind.index()];
        if policy.is_unlimited() {
            return Ok(Verdict {
                headers: HeaderMap::new(),
            });
        }
        let (allowed, tokens) = {
            let mut shard = self.shard(kind, key);
            if now.saturating_duration_since(shard.swept) > SWEEP_EVERY {
                shard.drop_full(&policies, now);
                shard.swept = now;
            }
            let verdict = shard.with_bucket(kind, key, &policies, self.shard_bound, now, |b| {
                b.take(&policy, now)
            });
            if verdict.0 && self.counting.load(Ordering::Relaxed) {
                let admitted = &mut shard.admitted[kind.index()];
                match admitted.get_mut(key) {
                    Some(n) => *n += 1,
                    None => {
                        admitted.insert(key.to_owned(), 1);
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
        self.counting.store(on, Ordering::Relaxed);
        if !on {
            for shard in &self.shards {
                let mut shard = shard
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for admitted in &mut shard.admitted {
                    admitted.clear();
                }
            }
        }
    }

    /// What `kind` admitted per key since the last call (while counting), and forgets it.
    fn take_admitted(&self, kind: Kind) -> HashMap<String, u32> {
        let mut all = HashMap::new();
        for shard in &self.shards {
            let taken = std::mem::take(
                &mut shard
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .admitted[kind.index()],
            );
            // A key lives in one shard only: nothing to add up.
            all.extend(taken);
        }
        all
    }

    /// Takes `n` tokens that another edge admitted from `key`'s bucket of `kind`.
    fn debit(&self, kind: Kind, key: &str, n: u32, now: Instant) {
        let policies = self.policies();
        let policy = policies[kind.index()];
        if policy.is_unlimited() || n == 0 {
            return;
        }
        self.shard(kind, key)
            .with_bucket(kind, key, &policies, self.shard_bound, now, |b| {
                b.debit(&policy, f64::from(n), now);
            });
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
    use std::net::{IpAddr, Ipv6Addr};

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
    fn runtime_settings_swap_rate_and_burst_and_clearing_restores_the_configured_ones() {
        let l = limiter(100);
        let now = Instant::now();
        for _ in 0..10 {
            l.check_at(Kind::Standard, "ip:1", now)
                .expect("within burst");
        }
        l.apply_setting("rate_burst", Some(&RuntimeValue::Count(3)))
            .expect("a burst");
        l.apply_setting("rate_per_sec", Some(&RuntimeValue::Rate(0.0)))
            .expect("a rate");
        // The bucket's 90 tokens are capped at the new burst at the next check.
        for _ in 0..3 {
            l.check_at(Kind::Standard, "ip:1", now)
                .expect("within the new burst");
        }
        l.check_at(Kind::Standard, "ip:1", now)
            .expect_err("over the new burst");
        let p = l.policies()[Kind::Standard.index()];
        assert_eq!((p.per_sec, p.burst), (0.0, 3.0));
        assert!(
            l.apply_setting("rate_burst", Some(&RuntimeValue::Rate(1.0)))
                .is_err(),
            "a value of the wrong kind is refused"
        );
        assert!(l.apply_setting("nope", None).is_err());
        assert_eq!(l.policies()[Kind::Standard.index()].burst, 3.0, "kept");
        l.apply_setting("rate_burst", None).expect("cleared");
        l.apply_setting("rate_per_sec", None).expect("cleared");
        let p = l.policies()[Kind::Standard.index()];
        assert_eq!((p.per_sec, p.burst), (1.0, 100.0), "the configured values");
        l.apply_setting("account_rate_per_sec", Some(&RuntimeValue::Rate(0.2)))
            .expect("a fractional rate");
        assert!((l.policies()[Kind::Account.index()].per_sec - 0.2).abs() < 1e-6);
        assert_eq!(
            l.policies()[Kind::Credentials.index()].burst,
            2.0,
            "untouched"
        );
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
    fn an_account_has_its_own_bucket_whatever_the_spelling() {
        let l = RateLimiter::new(&GatewaySettings {
            account_rate_per_sec: 0.2,
            account_rate_burst: 5,
            ..GatewaySettings::default()
        });
        for name in ["alice", "Alice", " ALICE ", "alice", "aLiCe"] {
            l.check_account(Some(name)).expect("within the burst");
        }
        let refused = l.check_account(Some("alice")).expect_err("over the burst");
        let response = refused.into_json();
        assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "5");
        l.check_account(Some("bob")).expect("another account");
        l.check_account(None).expect("no account named");
    }

    #[test]
    fn a_hundred_thousand_addresses_in_one_slash_64_share_one_bucket() {
        let l = limiter(3);
        let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 0));
        let mut admitted = 0;
        // One instant: nothing refills while the loop runs.
        let now = Instant::now();
        for i in 0..100_000u128 {
            // Spread over the whole interface-identifier half.
            let ip = IpAddr::V6(Ipv6Addr::from(
                base | (i * 0x9E37_79B9_7F4A_7C15) as u64 as u128,
            ));
            let key = client::ip_key(ip);
            assert_eq!(key, "ip:2001:db8:1:2::/64");
            admitted += usize::from(l.check_at(Kind::Standard, &key, now).is_ok());
        }
        assert_eq!(admitted, 3, "one burst for the whole /64");
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn a_hundred_thousand_keys_leave_the_map_within_its_bound() {
        for max in [1_000, 10_000] {
            let l = RateLimiter::new(&GatewaySettings {
                rate_max_keys: max,
                ..GatewaySettings::default()
            });
            let now = Instant::now();
            for i in 0..100_000 {
                // Half-drained buckets: none is full, so only eviction makes room.
                let key = format!("ip:{i}");
                l.check_at(Kind::Standard, &key, now).expect("a new key");
                l.debit(Kind::Credentials, &key, 1, now);
            }
            let len = l.len();
            assert!(len <= max, "{len} keys, bound {max}");
            assert!(len >= max / 2, "eviction keeps most: {len} of {max}");
        }
    }

    #[test]
    fn full_buckets_go_first_then_the_least_recently_used() {
        let l = RateLimiter::new(&GatewaySettings {
            rate_per_sec: 1,
            rate_burst: 10,
            rate_max_keys: 8,
            ..GatewaySettings::default()
        });
        let start = Instant::now();
        // Eight drained buckets, "ip:0" the oldest, then "ip:0" used again.
        for i in 0..8 {
            let at = start + Duration::from_millis(i);
            for _ in 0..10 {
                l.check_at(Kind::Standard, &format!("ip:{i}"), at)
                    .expect("within burst");
            }
        }
        let later = start + Duration::from_millis(20);
        l.check_at(Kind::Standard, "ip:0", later)
            .expect_err("ip:0 is empty and stays so");
        l.check_at(Kind::Standard, "ip:new", later)
            .expect("room made");
        assert!(l.len() <= 8);
        l.check_at(Kind::Standard, "ip:0", later)
            .expect_err("recently used: kept, still empty");
        // ip:1, the least recently used, was evicted: it comes back full.
        l.check_at(Kind::Standard, "ip:1", later)
            .expect("evicted, a full bucket again");
    }

    #[test]
    fn debits_from_other_edges_drain_the_bucket() {
        let l = limiter(5);
        let now = Instant::now();
        l.check_at(Kind::Standard, "ip:1", now)
            .expect("a full bucket");
        l.debit(Kind::Standard, "ip:1", 4, now);
        l.check_at(Kind::Standard, "ip:1", now)
            .expect_err("5 spent over two edges");
        // A key this edge has not seen starts from a full bucket less the debit.
        l.debit(Kind::Standard, "ip:2", 5, now);
        l.check_at(Kind::Standard, "ip:2", now)
            .expect_err("spent elsewhere");
    }

    #[test]
    fn a_debt_is_paid_off_by_refill_before_the_next_request_passes() {
        let l = limiter(5);
        let now = Instant::now();
        // 8 admitted elsewhere from a bucket of 5: 3 tokens in debt, refilled at 1 a second.
        l.debit(Kind::Standard, "ip:1", 8, now);
        let refused = l
            .check_at(Kind::Standard, "ip:1", now + Duration::from_millis(3_900))
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
        l.check_at(Kind::Standard, "ip:1", now + Duration::from_millis(4_100))
            .expect("debt paid, one token refilled");
    }

    #[test]
    fn admissions_are_counted_only_while_shared_and_remote_debits_are_not_counted() {
        let l = limiter(5);
        l.check(LimitClass::Standard, "ip:1").expect("within burst");
        assert!(l.take_admitted(Kind::Standard).is_empty());
        l.count_admissions(true);
        l.check(LimitClass::Standard, "ip:1").expect("within burst");
        l.check(LimitClass::Standard, "ip:1").expect("within burst");
        l.debit(Kind::Standard, "ip:1", 2, Instant::now());
        l.check(LimitClass::Standard, "ip:1")
            .expect_err("1 + 2 local + 2 remote");
        l.check(LimitClass::Credentials, "ip:1").expect("own class");
        let standard = l.take_admitted(Kind::Standard);
        assert_eq!(standard, HashMap::from([("ip:1".to_owned(), 2)]));
        assert!(l.take_admitted(Kind::Standard).is_empty(), "taken");
        assert_eq!(l.take_admitted(Kind::Credentials).len(), 1);
    }

    /// Not a timing assertion: prints what one check costs, to compare implementations.
    #[test]
    fn check_throughput_is_printed() {
        let l = RateLimiter::new(&GatewaySettings {
            rate_per_sec: 1_000_000,
            rate_burst: 1_000_000,
            ..GatewaySettings::default()
        });
        let keys: Vec<String> = (0..1000)
            .map(|i| format!("ip:10.0.{}.{}", i / 256, i % 256))
            .collect();
        let n = 1_000_000;
        let started = Instant::now();
        for i in 0..n {
            let _ = l.check(LimitClass::Standard, &keys[i % keys.len()]);
        }
        let hot = started.elapsed().as_nanos() / n as u128;
        let fresh: Vec<String> = (0..200_000).map(|i| format!("ip:fresh{i}")).collect();
        let started = Instant::now();
        for k in &fresh {
            let _ = l.check(LimitClass::Standard, k);
        }
        let new = started.elapsed().as_nanos() / fresh.len() as u128;
        println!(
            "check: {hot} ns on 1000 known keys, {new} ns per new key (200000 keys, bound {})",
            GatewaySettings::default().rate_max_keys
        );
    }
}
