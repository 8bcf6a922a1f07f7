//! Runtime configuration: the settings that may change while a process runs (the edge's rate
//! limits and request deadline, circuit breaker thresholds at the edge and the order service,
//! the order saga's retry budget, the catalog's and user's cache TTLs, every process's log
//! filter), kept in the NATS KV bucket
//! [`BUCKET`] per environment and service with their history, watched by every process and
//! applied without a restart (decision 0021).
//!
//! A key is `<environment>.<service>.<setting>` (`prod.gateway.rate_burst`); the environment
//! is `Settings::environment`, the service a context's name or `gateway`, and the setting one
//! of [`KNOWN`], each with its parser. A key that is absent means the configured value
//! (`polyshop.toml`, `POLYSHOP_*`). Every put is a revision the bucket keeps ([`HISTORY`] per
//! key), so `polyshop admin config history` lists them and `rollback` puts an earlier one
//! again. Values are checked twice: by `polyshop admin config set` before the put, and by the
//! process when it applies one (a value written past the cli is logged with why and the old
//! value kept).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use async_nats::jetstream::{self, kv};
use futures::StreamExt;

use crate::{config::Settings, events::streams::Replicas};

/// The KV bucket of runtime settings.
pub const BUCKET: &str = "polyshop_config";

/// Revisions kept per key (the most NATS KV allows).
pub const HISTORY: i64 = 64;

/// The process that owns the edge's settings.
pub const GATEWAY: &str = "gateway";

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A `tracing` filter (`warn,polyshop_gateway=debug`).
    Filter(String),
    /// A whole number (a burst, a count).
    Count(u32),
    /// A rate per second (may be fractional).
    Rate(f64),
    /// A duration in milliseconds.
    Millis(u64),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Filter(s) => f.write_str(s),
            Self::Count(n) => write!(f, "{n}"),
            Self::Rate(r) => write!(f, "{r}"),
            Self::Millis(ms) => write!(f, "{ms}"),
        }
    }
}

/// Which processes read a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every service and the edge.
    Every,
    /// The edge only.
    Gateway,
    /// The processes named (`gateway` or contexts).
    Only(&'static [&'static str]),
}

impl Scope {
    /// Whether process `service` reads a setting of this scope.
    pub fn reads(self, service: &str) -> bool {
        match self {
            Self::Every => true,
            Self::Gateway => service == GATEWAY,
            Self::Only(services) => services.contains(&service),
        }
    }
}

/// A setting that may change at runtime.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    /// Its name, the last part of the key (the config key of the same meaning, without the
    /// section).
    pub name: &'static str,
    /// Who reads it.
    pub scope: Scope,
    /// What it sets, and what it accepts.
    pub description: &'static str,
    /// Its parser and validator: the value, or why not.
    pub parse: fn(&str) -> Result<Value, String>,
}

/// The largest rate or burst accepted.
const MAX_RATE: u32 = 1_000_000;

fn count(text: &str) -> Result<u32, String> {
    let n: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    if n > MAX_RATE {
        return Err(format!("{n} is above the maximum {MAX_RATE}"));
    }
    Ok(n)
}

fn parse_count(text: &str) -> Result<Value, String> {
    count(text).map(Value::Count)
}

fn parse_whole_rate(text: &str) -> Result<Value, String> {
    count(text).map(|n| Value::Rate(f64::from(n)))
}

fn parse_rate(text: &str) -> Result<Value, String> {
    let r: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !r.is_finite() || r < 0.0 || r > f64::from(MAX_RATE) {
        return Err(format!("{text:?} must be a number from 0 to {MAX_RATE}"));
    }
    Ok(Value::Rate(r))
}

/// A whole number of `unit` (`""` for a plain count) within `range`, the range named as
/// `range_text` in the refusal: the parse every bounded setting shares.
fn whole_in(
    text: &str,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
    range_text: &str,
) -> Result<u64, String> {
    let of_unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" of {unit}")
    };
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number{of_unit}"))?;
    if !range.contains(&n) {
        let shown = if unit == "milliseconds" {
            format!("{n} ms")
        } else {
            n.to_string()
        };
        return Err(format!("{shown} is out of range: {range_text}"));
    }
    Ok(n)
}

/// A count within `range`, as a [`Value::Count`].
fn whole_count(
    text: &str,
    range: std::ops::RangeInclusive<u64>,
    range_text: &str,
) -> Result<Value, String> {
    let n = whole_in(text, range, "", range_text)?;
    // The ranges are far below u32::MAX.
    Ok(Value::Count(u32::try_from(n).unwrap_or(u32::MAX)))
}

fn parse_timeout(text: &str) -> Result<Value, String> {
    whole_in(
        text,
        1..=600_000,
        "milliseconds",
        "from 1 to 600000 (ten minutes)",
    )
    .map(Value::Millis)
}

fn parse_failures(text: &str) -> Result<Value, String> {
    whole_count(text, 1..=10_000, "from 1 to 10000")
}

fn parse_attempts(text: &str) -> Result<Value, String> {
    whole_count(text, 1..=10, "from 1 (no retry) to 10 attempts")
}

fn parse_ttl(text: &str) -> Result<Value, String> {
    whole_in(
        text,
        1..=60_000,
        "milliseconds",
        "from 1 to 60000 (a minute)",
    )
    .map(Value::Millis)
}

fn parse_filter(text: &str) -> Result<Value, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("an empty log filter; say e.g. info or warn,polyshop_gateway=debug".into());
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map_err(|e| format!("{text:?} is not a log filter: {e}"))?;
    Ok(Value::Filter(text.to_owned()))
}

/// Every runtime setting; a key naming any other is refused.
pub const KNOWN: &[SettingSpec] = &[
    SettingSpec {
        name: "log",
        scope: Scope::Every,
        description: "the log filter (as `log`), e.g. warn or info,polyshop_gateway=debug",
        parse: parse_filter,
    },
    SettingSpec {
        name: "rate_per_sec",
        scope: Scope::Gateway,
        description: "tokens per second of the ordinary bucket per principal (gateway.rate_per_sec), 0 to 1000000",
        parse: parse_whole_rate,
    },
    SettingSpec {
        name: "rate_burst",
        scope: Scope::Gateway,
        description: "size of the ordinary bucket (gateway.rate_burst), 0 (no limit) to 1000000",
        parse: parse_count,
    },
    SettingSpec {
        name: "auth_rate_per_sec",
        scope: Scope::Gateway,
        description: "tokens per second of the login/register bucket per address (gateway.auth_rate_per_sec), 0 to 1000000",
        parse: parse_whole_rate,
    },
    SettingSpec {
        name: "auth_rate_burst",
        scope: Scope::Gateway,
        description: "size of the login/register bucket (gateway.auth_rate_burst), 0 (no limit) to 1000000",
        parse: parse_count,
    },
    SettingSpec {
        name: "account_rate_per_sec",
        scope: Scope::Gateway,
        description: "logins per second per account (gateway.account_rate_per_sec), a number from 0 to 1000000",
        parse: parse_rate,
    },
    SettingSpec {
        name: "account_rate_burst",
        scope: Scope::Gateway,
        description: "size of the per-account login bucket (gateway.account_rate_burst), 0 (no limit) to 1000000",
        parse: parse_count,
    },
    SettingSpec {
        name: "request_timeout_ms",
        scope: Scope::Gateway,
        description: "deadline of one upstream call at the edge (gateway.request_timeout_ms), 1 to 600000",
        parse: parse_timeout,
    },
    SettingSpec {
        name: "breaker_failures",
        scope: Scope::Only(&[GATEWAY, "order"]),
        description: "consecutive failures that open a circuit to an upstream (gateway.breaker_failures, order.breaker_failures), 1 to 10000",
        parse: parse_failures,
    },
    SettingSpec {
        name: "breaker_cool_down_ms",
        scope: Scope::Only(&[GATEWAY, "order"]),
        description: "how long an open circuit fails fast before it lets a probe through (gateway.breaker_cool_down_ms, order.breaker_cool_down_ms), 1 to 600000",
        parse: parse_timeout,
    },
    SettingSpec {
        name: "call_attempts",
        scope: Scope::Only(&["order"]),
        description: "the retry budget: attempts per idempotent call to a saga participant, the first included (order.call_attempts), 1 to 10",
        parse: parse_attempts,
    },
    SettingSpec {
        name: "cache_ttl_ms",
        scope: Scope::Only(&["catalog", "user"]),
        description: "how long a cached product (catalog) or account (user) is served before a read goes to the store, 1 to 60000",
        parse: parse_ttl,
    },
];

/// The setting named `name`, if known.
pub fn spec(name: &str) -> Option<&'static SettingSpec> {
    KNOWN.iter().find(|s| s.name == name)
}

/// The known settings' names, comma-separated.
pub fn names() -> String {
    KNOWN.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// The processes that read runtime settings: every context that runs as a service, and the
/// edge.
pub fn services() -> Vec<&'static str> {
    crate::events::streams::contexts()
        .chain([GATEWAY])
        .collect()
}

/// The settings `service` reads.
pub fn settings_of(service: &str) -> impl Iterator<Item = &'static SettingSpec> + '_ {
    KNOWN.iter().filter(move |s| s.scope.reads(service))
}

/// Whether `env` may be an environment name (a key part of its own).
pub fn valid_environment(env: &str) -> bool {
    (1..=32).contains(&env.len())
        && env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks that `service` reads `setting` and that `value` is a good value of it: the value,
/// or why not.
///
/// # Errors
/// An unknown service or setting, a setting the service does not read, or a bad value.
pub fn validate(service: &str, setting: &str, value: &str) -> Result<Value, String> {
    let spec = spec_for(service, setting)?;
    (spec.parse)(value).map_err(|why| format!("{service}.{setting}: {why}"))
}

/// The spec of `setting` for `service`.
///
/// # Errors
/// An unknown service or setting, or a setting the service does not read.
pub fn spec_for(service: &str, setting: &str) -> Result<&'static SettingSpec, String> {
    if !services().contains(&service) {
        return Err(format!(
            "unknown service {service:?}; known: {}",
            services().join(", ")
        ));
    }
    let spec =
        spec(setting).ok_or_else(|| format!("unknown setting {setting:?}; known: {}", names()))?;
    if !spec.scope.reads(service) {
        let readers = match spec.scope {
            Scope::Every => String::new(),
            Scope::Gateway => GATEWAY.to_owned(),
            Scope::Only(services) => services.join(", "),
        };
        return Err(format!(
            "{setting} is a setting of {readers} only, not of {service}"
        ));
    }
    Ok(spec)
}

/// Applies a runtime `breaker_failures` or `breaker_cool_down_ms` to `breaker` (`None`: as
/// configured), for every process that keeps circuits.
///
/// # Errors
/// Another setting, or a value of the wrong kind.
pub fn tune_breaker(
    breaker: &crate::resilience::CircuitBreaker,
    setting: &str,
    value: Option<&Value>,
) -> Result<(), String> {
    match (setting, value) {
        ("breaker_failures", None) => breaker.set_threshold(None),
        ("breaker_failures", Some(Value::Count(n))) => breaker.set_threshold(Some(*n)),
        ("breaker_cool_down_ms", None) => breaker.set_cool_down(None),
        ("breaker_cool_down_ms", Some(Value::Millis(ms))) => {
            breaker.set_cool_down(Some(Duration::from_millis(*ms)));
        }
        (setting, Some(other)) => return Err(format!("{other} is no {setting}")),
        (setting, None) => return Err(format!("{setting} is no breaker setting")),
    }
    Ok(())
}

/// Follows the runtime `cache_ttl_ms` of this process, if it has a runtime configuration:
/// `set_ttl` gets each new TTL, `None` for the configured one.
pub fn follow_cache_ttl(set_ttl: impl Fn(Option<Duration>) + Send + Sync + 'static) {
    let Some(runtime) = process() else {
        return;
    };
    runtime.on(
        "cache_ttl_ms",
        Arc::new(move |value| match value {
            None => {
                set_ttl(None);
                Ok(())
            }
            Some(Value::Millis(ms)) => {
                set_ttl(Some(Duration::from_millis(*ms)));
                Ok(())
            }
            Some(other) => Err(format!("{other} is no cache_ttl_ms")),
        }),
    );
}

/// The key of `setting` of `service` in environment `env`.
pub fn key(env: &str, service: &str, setting: &str) -> String {
    format!("{env}.{service}.{setting}")
}

/// Called with a new value of a setting (`None`: back to the configured value); an error
/// keeps the old value and is logged.
pub type Applier = Arc<dyn Fn(Option<&Value>) -> Result<(), String> + Send + Sync>;

/// One process's runtime settings: the values in force and who applies them.
pub struct RuntimeConfig {
    env: String,
    service: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The runtime values in force (absent: configured), with their revision.
    current: HashMap<&'static str, (Value, u64)>,
    appliers: HashMap<&'static str, Vec<Applier>>,
}

impl std::fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("env", &self.env)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

static PROCESS: OnceLock<Arc<RuntimeConfig>> = OnceLock::new();

/// The runtime configuration of this process, once [`start`] ran (a `polyshop serve`); `None`
/// in tests that build services in-process.
pub fn process() -> Option<Arc<RuntimeConfig>> {
    PROCESS.get().cloned()
}

/// Makes the runtime configuration of process `service` (`catalog`, `gateway`, …; a
/// `polyshop-` prefix is dropped) and, when it reaches NATS, follows its keys in the
/// background. Call once, inside a Tokio runtime; later calls return the first one's.
pub fn start(service: &str, settings: &Settings) -> Arc<RuntimeConfig> {
    let service = crate::events::identity::of_process(service).to_owned();
    let mut started = false;
    let config = PROCESS.get_or_init(|| {
        started = true;
        Arc::new(RuntimeConfig::new(&settings.environment, &service))
    });
    // The edge uses NATS only when told to (as discovery does); every service always does.
    let uses_nats = service != GATEWAY
        || settings.nats.url.is_some()
        || settings.discovery.mode == crate::config::DiscoveryMode::Nats;
    if started && uses_nats {
        let config = config.clone();
        let settings = settings.clone();
        tokio::spawn(async move {
            let name = format!("polyshop-{}", config.service);
            match crate::events::identity::connect_as(&settings, &name).await {
                Ok(client) => config.follow(jetstream::new(client)).await,
                Err(e) => {
                    tracing::warn!(error = %e, "runtime configuration: cannot connect to NATS; only the configured values apply")
                }
            }
        });
    }
    config.clone()
}

impl RuntimeConfig {
    /// The runtime configuration of `service` in environment `env`, following nothing yet.
    pub fn new(env: &str, service: &str) -> Self {
        Self {
            env: env.to_owned(),
            service: service.to_owned(),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Calls `apply` with every new value of `setting` (`None` when the key is deleted), and
    /// at once with the value in force if there is one. Panics on a setting not in [`KNOWN`]:
    /// names are constants.
    pub fn on(&self, setting: &str, apply: Applier) {
        let spec = spec(setting).unwrap_or_else(|| panic!("unknown runtime setting {setting}"));
        let mut state = self.state();
        if let Some((value, _)) = state.current.get(spec.name)
            && let Err(why) = apply(Some(value))
        {
            tracing::warn!(setting, %value, %why, "runtime setting not applied");
        }
        state.appliers.entry(spec.name).or_default().push(apply);
    }

    /// The runtime value of `setting` in force, if any.
    pub fn current(&self, setting: &str) -> Option<Value> {
        self.state().current.get(setting).map(|(v, _)| v.clone())
    }

    /// Applies what the bucket says of `key` (`None`: deleted). A key of another service or
    /// environment, an unknown setting or a bad value is logged and changes nothing.
    pub fn receive(&self, key: &str, text: Option<&str>, revision: u64) {
        let prefix = format!("{}.{}.", self.env, self.service);
        let Some(setting) = key.strip_prefix(&prefix) else {
            return;
        };
        let spec = match spec_for(&self.service, setting) {
            Ok(spec) => spec,
            Err(why) => {
                tracing::warn!(key, %why, "runtime configuration: key ignored");
                return;
            }
        };
        let value = match text.map(spec.parse).transpose() {
            Ok(value) => value,
            Err(why) => {
                tracing::warn!(key, revision, %why, "runtime configuration: bad value refused; the old value stays");
                return;
            }
        };
        let mut state = self.state();
        if state.current.get(spec.name).map(|(v, _)| v) == value.as_ref() {
            if let Some(value) = value {
                state.current.insert(spec.name, (value, revision));
            }
            return;
        }
        for apply in state.appliers.get(spec.name).into_iter().flatten() {
            if let Err(why) = apply(value.as_ref()) {
                tracing::warn!(key, revision, %why, "runtime configuration: value not applied; the old value stays");
                return;
            }
        }
        match &value {
            Some(v) => {
                tracing::info!(setting = spec.name, value = %v, revision, "runtime setting applied");
                state.current.insert(spec.name, (v.clone(), revision));
            }
            None => {
                tracing::info!(
                    setting = spec.name,
                    revision,
                    "runtime setting cleared: back to the configured value"
                );
                state.current.remove(spec.name);
            }
        }
    }

    /// Follows this process's keys until the process ends, watching again (after a pause)
    /// when the watch breaks or the bucket does not exist yet.
    pub async fn follow(&self, js: jetstream::Context) {
        let mut backoff = Duration::from_millis(200);
        let filter = format!("{}.{}.>", self.env, self.service);
        let mut warned = false;
        loop {
            let result = async {
                // Opened, never created: only the admin writes this bucket (decision 0021).
                let store = js
                    .get_key_value(BUCKET)
                    .await
                    .map_err(|e| format!("bucket {BUCKET}: {e}"))?;
                let mut updates = store
                    .watch_with_history(&filter)
                    .await
                    .map_err(|e| e.to_string())?;
                while let Some(entry) = updates.next().await {
                    let entry = entry.map_err(|e| e.to_string())?;
                    let text = match entry.operation {
                        kv::Operation::Put => {
                            Some(String::from_utf8_lossy(&entry.value).into_owned())
                        }
                        kv::Operation::Delete | kv::Operation::Purge => None,
                    };
                    self.receive(&entry.key, text.as_deref(), entry.revision);
                    backoff = Duration::from_millis(200);
                }
                Ok::<(), String>(())
            }
            .await;
            if let Err(e) = result
                && !warned
            {
                tracing::warn!(error = %e, "cannot watch the runtime configuration; retrying");
                warned = true;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// The bucket, created if needed (one replica; an existing one keeps its count). Only the
/// admin identity may.
///
/// # Errors
/// When JetStream cannot be reached.
pub async fn bucket(js: &jetstream::Context) -> Result<kv::Store, String> {
    bucket_with(js, Replicas::Keep(1)).await
}

/// The bucket with `replicas` copies, created or scaled to that (`polyshop up`).
///
/// # Errors
/// When JetStream cannot be reached or has fewer servers than `replicas`.
pub async fn bucket_replicated(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<kv::Store, String> {
    bucket_with(js, Replicas::Exactly(replicas)).await
}

async fn bucket_with(js: &jetstream::Context, replicas: Replicas) -> Result<kv::Store, String> {
    let num_replicas = replicas
        .of(js, &format!("KV_{BUCKET}"))
        .await
        .map_err(|e| e.to_string())?;
    js.create_or_update_key_value(kv::Config {
        bucket: BUCKET.into(),
        description: "Polyshop runtime settings: <environment>.<service>.<setting> -> value".into(),
        history: HISTORY,
        num_replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
}

/// One revision of a key.
#[derive(Debug, Clone)]
pub struct Revision {
    /// The bucket's revision (sequence) number.
    pub revision: u64,
    /// When it was written.
    pub time: async_nats::datetime::DateTime,
    /// The value; `None` for a delete (back to the configured value).
    pub value: Option<String>,
}

/// The value of `setting` of `service` in `env` now, with its revision (`None`: the
/// configured value applies).
///
/// # Errors
/// A setting the service does not read, or JetStream unreachable.
pub async fn get(
    js: &jetstream::Context,
    env: &str,
    service: &str,
    setting: &str,
) -> Result<Option<(String, u64)>, String> {
    spec_for(service, setting)?;
    let store = bucket(js).await?;
    let entry = store
        .entry(key(env, service, setting))
        .await
        .map_err(|e| e.to_string())?;
    Ok(entry.and_then(|e| match e.operation {
        kv::Operation::Put => Some((String::from_utf8_lossy(&e.value).into_owned(), e.revision)),
        kv::Operation::Delete | kv::Operation::Purge => None,
    }))
}

/// The version of `service`'s runtime settings in `env`: the newest revision among its keys
/// (a put or a delete), 0 when none was ever set.
///
/// # Errors
/// JetStream unreachable.
pub async fn version(js: &jetstream::Context, env: &str, service: &str) -> Result<u64, String> {
    let store = bucket(js).await?;
    let mut newest = 0;
    for spec in settings_of(service) {
        if let Some(entry) = store
            .entry(key(env, service, spec.name))
            .await
            .map_err(|e| e.to_string())?
        {
            newest = newest.max(entry.revision);
        }
    }
    Ok(newest)
}

/// Validates and writes `value` of `setting` of `service` in `env`: its new revision.
///
/// # Errors
/// A setting the service does not read, a bad value (why), or JetStream unreachable.
pub async fn set(
    js: &jetstream::Context,
    env: &str,
    service: &str,
    setting: &str,
    value: &str,
) -> Result<u64, String> {
    let parsed = validate(service, setting, value)?;
    let store = bucket(js).await?;
    store
        .put(key(env, service, setting), parsed.to_string().into())
        .await
        .map_err(|e| e.to_string())
}

/// Deletes the key: back to each process's configured value.
///
/// # Errors
/// A setting the service does not read, or JetStream unreachable.
pub async fn clear(
    js: &jetstream::Context,
    env: &str,
    service: &str,
    setting: &str,
) -> Result<(), String> {
    spec_for(service, setting)?;
    let store = bucket(js).await?;
    store
        .delete(key(env, service, setting))
        .await
        .map_err(|e| e.to_string())
}

/// Every revision of the key the bucket keeps, oldest first.
///
/// # Errors
/// A setting the service does not read, or JetStream unreachable.
pub async fn history(
    js: &jetstream::Context,
    env: &str,
    service: &str,
    setting: &str,
) -> Result<Vec<Revision>, String> {
    spec_for(service, setting)?;
    let store = bucket(js).await?;
    let mut entries = match store.history(key(env, service, setting)).await {
        Ok(entries) => entries,
        // A key never written has no history (some servers answer "no messages").
        Err(_) => return Ok(Vec::new()),
    };
    let mut found = Vec::new();
    while let Some(entry) = entries.next().await {
        let entry = entry.map_err(|e| e.to_string())?;
        found.push(Revision {
            revision: entry.revision,
            time: entry.created,
            value: match entry.operation {
                kv::Operation::Put => Some(String::from_utf8_lossy(&entry.value).into_owned()),
                kv::Operation::Delete | kv::Operation::Purge => None,
            },
        });
    }
    Ok(found)
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolledBack {
    /// Put the value of revision `from` again, as revision `revision`.
    Value {
        /// The value put.
        value: String,
        /// The revision it came from.
        from: u64,
        /// The new revision.
        revision: u64,
    },
    /// The key had no earlier value: deleted, back to the configured value.
    Configured,
}

/// Puts the value of an earlier revision again: `to`, or else the revision before the
/// current one (or deletes the key when there is none: back to the configured value). The
/// earlier value is validated again, since the rules may have changed since.
///
/// # Errors
/// An unknown revision, a value no longer valid, or JetStream unreachable.
pub async fn rollback(
    js: &jetstream::Context,
    env: &str,
    service: &str,
    setting: &str,
    to: Option<u64>,
) -> Result<RolledBack, String> {
    let revisions = history(js, env, service, setting).await?;
    let target = match to {
        Some(n) => Some(
            revisions
                .iter()
                .find(|r| r.revision == n)
                .ok_or_else(|| {
                    format!(
                        "no revision {n} of {} (see `polyshop admin config history {service} {setting}`)",
                        key(env, service, setting)
                    )
                })?
                .clone(),
        ),
        None => {
            let current = revisions.last().map(|r| r.revision);
            revisions
                .iter()
                .rev()
                .find(|r| Some(r.revision) != current)
                .cloned()
        }
    };
    match target {
        Some(Revision {
            value: Some(value),
            revision: from,
            ..
        }) => {
            let revision = set(js, env, service, setting, &value).await?;
            Ok(RolledBack::Value {
                value,
                from,
                revision,
            })
        }
        // The earlier revision was a delete, or there is none.
        _ => {
            clear(js, env, service, setting).await?;
            Ok(RolledBack::Configured)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn every_setting_parses_its_values_and_refuses_others_with_a_reason() {
        assert_eq!(
            validate("gateway", "rate_burst", " 20 "),
            Ok(Value::Count(20))
        );
        assert_eq!(
            validate("gateway", "rate_per_sec", "5"),
            Ok(Value::Rate(5.0))
        );
        assert_eq!(
            validate("gateway", "account_rate_per_sec", "0.2"),
            Ok(Value::Rate(0.2))
        );
        assert_eq!(
            validate("gateway", "request_timeout_ms", "2500"),
            Ok(Value::Millis(2500))
        );
        assert_eq!(
            validate("order", "log", "warn,polyshop_order=debug"),
            Ok(Value::Filter("warn,polyshop_order=debug".into()))
        );
        for (service, setting, value, why) in [
            ("gateway", "rate_burst", "lots", "not a whole number"),
            ("gateway", "rate_burst", "-1", "not a whole number"),
            ("gateway", "rate_burst", "2000000", "above the maximum"),
            ("gateway", "rate_per_sec", "1.5", "not a whole number"),
            ("gateway", "account_rate_per_sec", "NaN", "from 0 to"),
            ("gateway", "account_rate_per_sec", "-0.5", "from 0 to"),
            ("gateway", "request_timeout_ms", "0", "out of range"),
            ("gateway", "log", "", "empty log filter"),
            ("gateway", "log", "info,[[", "not a log filter"),
            ("catalog", "rate_burst", "5", "gateway only"),
            ("catalog", "breaker_failures", "5", "gateway, order only"),
            ("order", "breaker_failures", "0", "out of range"),
            ("order", "call_attempts", "11", "out of range"),
            ("order", "call_attempts", "three", "not a whole number"),
            ("user", "cache_ttl_ms", "600000", "out of range"),
            ("gateway", "cache_ttl_ms", "50", "catalog, user only"),
            ("gateway", "no_such", "5", "unknown setting"),
            ("shop", "log", "info", "unknown service"),
        ] {
            let err = validate(service, setting, value).expect_err(value);
            assert!(err.contains(why), "{service} {setting} {value}: {err}");
        }
    }

    #[test]
    fn every_process_reads_the_log_filter_and_only_the_edge_its_limits() {
        assert!(services().contains(&"order") && services().contains(&"gateway"));
        let order: Vec<_> = settings_of("order").map(|s| s.name).collect();
        assert_eq!(
            order,
            [
                "log",
                "breaker_failures",
                "breaker_cool_down_ms",
                "call_attempts"
            ]
        );
        let catalog: Vec<_> = settings_of("catalog").map(|s| s.name).collect();
        assert_eq!(catalog, ["log", "cache_ttl_ms"]);
        assert_eq!(
            settings_of("gateway").count(),
            KNOWN.len() - 2,
            "all but call_attempts and cache_ttl_ms"
        );
        assert!(valid_environment("prod-eu_1"));
        for bad in ["", "Prod", "a.b", "a>", &"x".repeat(33)] {
            assert!(!valid_environment(bad), "{bad}");
        }
    }

    #[test]
    fn a_process_applies_its_own_good_values_and_keeps_the_old_one_otherwise() {
        let config = RuntimeConfig::new("dev", "gateway");
        let seen = Arc::new(AtomicU64::new(0));
        let sink = seen.clone();
        config.on(
            "rate_burst",
            Arc::new(move |v| {
                let n = match v {
                    Some(Value::Count(n)) => u64::from(*n),
                    None => 100,
                    Some(other) => return Err(format!("{other}?")),
                };
                sink.store(n, Ordering::Relaxed);
                Ok(())
            }),
        );
        config.receive("dev.gateway.rate_burst", Some("7"), 1);
        assert_eq!(seen.load(Ordering::Relaxed), 7);
        assert_eq!(config.current("rate_burst"), Some(Value::Count(7)));
        config.receive("dev.gateway.rate_burst", Some("seven"), 2);
        assert_eq!(
            seen.load(Ordering::Relaxed),
            7,
            "a bad value keeps the old one"
        );
        assert_eq!(config.current("rate_burst"), Some(Value::Count(7)));
        config.receive("prod.gateway.rate_burst", Some("9"), 3);
        config.receive("dev.order.rate_burst", Some("9"), 4);
        assert_eq!(
            seen.load(Ordering::Relaxed),
            7,
            "another environment or service"
        );
        config.receive("dev.gateway.rate_burst", None, 5);
        assert_eq!(
            seen.load(Ordering::Relaxed),
            100,
            "deleted: the configured value"
        );
        assert_eq!(config.current("rate_burst"), None);
        // A late subscriber gets the value in force at once.
        config.receive("dev.gateway.rate_burst", Some("3"), 6);
        let late = Arc::new(AtomicU64::new(0));
        let sink = late.clone();
        config.on(
            "rate_burst",
            Arc::new(move |_| {
                sink.store(1, Ordering::Relaxed);
                Ok(())
            }),
        );
        assert_eq!(late.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_circuit_follows_its_runtime_threshold_and_keeps_it_on_a_bad_value() {
        use crate::resilience::{BreakerState, CircuitBreaker};
        let config = RuntimeConfig::new("dev", "order");
        let breaker = Arc::new(CircuitBreaker::new(
            "runtime-tuned",
            5,
            Duration::from_secs(60),
        ));
        for setting in ["breaker_failures", "breaker_cool_down_ms"] {
            let breaker = breaker.clone();
            config.on(
                setting,
                Arc::new(move |v| tune_breaker(&breaker, setting, v)),
            );
        }
        config.receive("dev.order.breaker_failures", Some("1"), 1);
        config.receive("dev.order.breaker_failures", Some("0"), 2);
        assert_eq!(config.current("breaker_failures"), Some(Value::Count(1)));
        breaker.record(false);
        assert_eq!(
            breaker.state(),
            BreakerState::Open,
            "one failure is enough now"
        );
        config.receive("dev.order.breaker_cool_down_ms", Some("5"), 3);
        tokio::time::sleep(Duration::from_millis(15)).await;
        assert!(breaker.allow(), "probing after the runtime cool-down");
        breaker.record(true);
        config.receive("dev.order.breaker_failures", None, 4);
        for _ in 0..4 {
            breaker.record(false);
        }
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "five again, as configured"
        );
    }
}
