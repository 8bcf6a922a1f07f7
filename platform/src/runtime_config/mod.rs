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

/// How long a process's watch of its keys may stay quiet before it is opened again (its
/// replay of each key's last value changes nothing that is already in force).
const RESYNC_EVERY: Duration = Duration::from_secs(10);

/// The process that owns the edge's settings.
pub const GATEWAY: &str = "gateway";

mod settings;

pub use settings::{
    KNOWN, Scope, SettingSpec, Value, names, services, settings_of, spec, spec_for,
    valid_environment, validate,
};

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
                // Quiet for RESYNC_EVERY: watch again, which replays each key's last value, so
                // a watch that stalls without an error cannot keep a process on an old value.
                while let Ok(Some(entry)) = tokio::time::timeout(RESYNC_EVERY, updates.next()).await
                {
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
    let description = "Polyshop runtime settings: <environment>.<service>.<setting> -> value";
    crate::events::streams::key_value(js, BUCKET, description, HISTORY, replicas).await
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
