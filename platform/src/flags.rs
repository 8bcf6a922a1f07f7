//! Feature flags: named switches with defaults in code ([`KNOWN`]), overridden by config
//! (`[flags]` in polyshop.toml, `POLYSHOP_FLAGS_<NAME>`), and at runtime by the config
//! service: the NATS KV bucket `polyshop_flags`, which every process that uses flags watches
//! (`polyshop admin flags set <name> on|off`, `clear <name>` to go back to the configured
//! value). A flag read is a map lookup; a change reaches every process within moments.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
    time::Duration,
};

use async_nats::jetstream::{self, kv};
use futures::StreamExt;

use crate::{events::streams::Replicas, shutdown::Shutdown};

/// The KV bucket of runtime overrides.
pub const BUCKET: &str = "polyshop_flags";

/// A flag the code knows.
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    /// Its name (lower case, `_` between words).
    pub name: &'static str,
    /// Its value unless configured or overridden.
    pub default: bool,
    /// What it switches.
    pub description: &'static str,
}

/// The gauge of the flag values in force in a process.
pub const FLAG_GAUGE: &str = "polyshop_feature_flag_enabled";

/// Every flag; config naming any other is refused at start.
pub const KNOWN: &[FlagSpec] = &[
    FlagSpec {
        name: "order_replica_fallback",
        default: true,
        description: "the order saga decides on the local user replica while the user service is unavailable (off: such orders are rejected SERVICE_UNAVAILABLE)",
    },
    FlagSpec {
        name: "notification_email",
        default: true,
        description: "notifications are mailed when the user's address is known (off: kept in-app only)",
    },
];

/// The flag named `name`, if known.
pub fn spec(name: &str) -> Option<&'static FlagSpec> {
    KNOWN.iter().find(|f| f.name == name)
}

/// Parses an override: `on`/`off`, `true`/`false`, `1`/`0`.
pub fn parse(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Some(true),
        "off" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// The flags of one process: configured values, and overrides while watching the bucket.
#[derive(Debug, Clone)]
pub struct Flags {
    configured: Arc<HashMap<&'static str, bool>>,
    overrides: Arc<RwLock<HashMap<String, bool>>>,
}

impl Flags {
    /// Defaults with `configured` (the `[flags]` section) applied; unknown names are ignored
    /// here because config validation already refused them.
    pub fn new(configured: &BTreeMap<String, bool>) -> Self {
        let values = KNOWN
            .iter()
            .map(|f| (f.name, configured.get(f.name).copied().unwrap_or(f.default)))
            .collect();
        let flags = Self {
            configured: Arc::new(values),
            overrides: Arc::default(),
        };
        for spec in KNOWN {
            flags.report(spec.name);
        }
        flags
    }

    /// Publishes the value in force as `polyshop_feature_flag_enabled{flag}` (1 on, 0 off),
    /// so the governance status can show which instances applied an override.
    fn report(&self, name: &str) {
        crate::metrics::set(
            FLAG_GAUGE,
            "Feature flag value in force in this process: 1 on, 0 off.",
            &[("flag", name)],
            if self.enabled(name) { 1.0 } else { 0.0 },
        );
    }

    /// Whether flag `name` is on now. An unknown name is off (and a bug: names are constants).
    pub fn enabled(&self, name: &str) -> bool {
        let overridden = self
            .overrides
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .copied();
        overridden.unwrap_or_else(|| self.configured.get(name).copied().unwrap_or(false))
    }

    fn apply(&self, name: &str, value: Option<bool>) {
        let mut overrides = self
            .overrides
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match value {
            Some(v) => {
                overrides.insert(name.to_owned(), v);
            }
            None => {
                overrides.remove(name);
            }
        }
        drop(overrides);
        self.report(name);
        tracing::info!(flag = name, value = ?value, "feature flag override");
    }

    /// Follows the bucket's overrides until `stopped`, reconnecting while NATS is away.
    pub fn watch(&self, js: jetstream::Context, stopped: Shutdown) {
        let flags = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                let watched = async {
                    // An existing bucket is opened as it is: updating it (what `bucket` does)
                    // is the admin's, and a service's NATS identity may not (decision 0016).
                    let store = match js.get_key_value(BUCKET).await {
                        Ok(store) => store,
                        Err(_) => bucket(&js).await?,
                    };
                    let mut updates = store
                        .watch_with_history(">")
                        .await
                        .map_err(|e| e.to_string())?;
                    while let Some(entry) = updates.next().await {
                        let entry = entry.map_err(|e| e.to_string())?;
                        let value = match entry.operation {
                            kv::Operation::Put => parse(&String::from_utf8_lossy(&entry.value)),
                            kv::Operation::Delete | kv::Operation::Purge => None,
                        };
                        flags.apply(&entry.key, value);
                    }
                    Ok::<(), String>(())
                };
                tokio::select! {
                    result = watched => {
                        if let Err(e) = result {
                            tracing::warn!(error = %e, "cannot watch feature flags; retrying");
                        }
                    }
                    () = stopped.clone().wait() => return,
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        });
    }
}

/// The overrides bucket, created if needed (with one replica) or updated keeping its
/// replica count.
///
/// # Errors
/// When JetStream cannot be reached.
pub async fn bucket(js: &jetstream::Context) -> Result<kv::Store, String> {
    bucket_with(js, Replicas::Keep(1)).await
}

/// The overrides bucket with `replicas` copies, created or scaled to that (what `polyshop up`
/// does before it starts the services).
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
    let description = "Polyshop feature flag overrides: <flag> -> on|off";
    crate::events::streams::key_value(js, BUCKET, description, 5, replicas).await
}

/// Overrides flag `name` everywhere (`None` clears the override).
///
/// # Errors
/// An unknown flag, or JetStream unreachable.
pub async fn set(js: &jetstream::Context, name: &str, value: Option<bool>) -> Result<(), String> {
    spec(name).ok_or_else(|| format!("unknown flag {name}; known: {}", names()))?;
    let store = bucket(js).await?;
    match value {
        Some(v) => store
            .put(name, if v { "on" } else { "off" }.into())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        None => store.delete(name).await.map_err(|e| e.to_string()),
    }
}

/// The runtime overrides in force.
///
/// # Errors
/// JetStream unreachable.
pub async fn overrides(js: &jetstream::Context) -> Result<BTreeMap<String, bool>, String> {
    let store = bucket(js).await?;
    let mut keys = store.keys().await.map_err(|e| e.to_string())?;
    let mut found = BTreeMap::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| e.to_string())?;
        if let Some(value) = store.get(&key).await.map_err(|e| e.to_string())?
            && let Some(v) = parse(&String::from_utf8_lossy(&value))
        {
            found.insert(key, v);
        }
    }
    Ok(found)
}

/// The known names, comma-separated.
pub fn names() -> String {
    KNOWN.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_beats_defaults_and_overrides_beat_config() {
        let configured = BTreeMap::from([("notification_email".to_owned(), false)]);
        let flags = Flags::new(&configured);
        assert!(flags.enabled("order_replica_fallback"), "default on");
        assert!(!flags.enabled("notification_email"), "configured off");
        flags.apply("notification_email", Some(true));
        assert!(flags.enabled("notification_email"), "overridden on");
        flags.apply("notification_email", None);
        assert!(
            !flags.enabled("notification_email"),
            "back to the configured value"
        );
        assert!(!flags.enabled("no_such_flag"));
    }

    #[test]
    fn override_values_are_on_off_words() {
        assert_eq!(parse(" ON "), Some(true));
        assert_eq!(parse("false"), Some(false));
        assert_eq!(parse("maybe"), None);
    }
}
