//! The registry in NATS JetStream KV (the bucket `polyshop_registry`), like Consul's: an
//! instance registers `<service>.<instance id>` → its [`Instance`] as JSON, refreshes the entry
//! every heartbeat and deletes it on shutdown; one that dies without deleting disappears once
//! its entry is older than the TTL. Callers *watch* a service's keys: a registration or a
//! deregistration reaches them at once, and each watcher also drops an entry it has not seen
//! refreshed for a TTL (the bucket's age limit removes entries without telling watchers). A
//! registry outage keeps the last known instances (cache with fallback); the configured URL
//! serves while none is registered.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, kv};
use futures::StreamExt;

use super::{Instance, Members, RegistryError, err};
use crate::{config::DiscoverySettings, shutdown::Shutdown};

/// The KV bucket of the registry.
pub const BUCKET: &str = "polyshop_registry";

/// The registry bucket; created with `settings`' TTL and `replicas` copies if it does not
/// exist. An existing bucket is used as it is: a process that does not know the cluster's
/// size (an admin command, say) must not scale it down.
///
/// # Errors
/// When JetStream cannot be reached.
pub async fn bucket(
    js: &jetstream::Context,
    settings: &DiscoverySettings,
    replicas: usize,
) -> Result<kv::Store, RegistryError> {
    if let Ok(store) = js.get_key_value(BUCKET).await {
        return Ok(store);
    }
    let created = js
        .create_key_value(kv::Config {
            bucket: BUCKET.into(),
            description: "Polyshop service instances: <service>.<instance> -> JSON".into(),
            history: 1,
            max_age: Duration::from_secs(settings.ttl_secs),
            storage: jetstream::stream::StorageType::Memory,
            num_replicas: replicas.max(1),
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        // Another process created it meanwhile.
        Err(e) => js.get_key_value(BUCKET).await.map_err(|_| err(e)),
    }
}

/// Every live instance, by service.
///
/// # Errors
/// When the bucket cannot be read.
pub async fn instances(store: &kv::Store) -> Result<Vec<Instance>, RegistryError> {
    let mut keys = store.keys().await.map_err(err)?;
    let mut found = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(err)?;
        // An entry may expire or be deleted between listing and reading it.
        if let Some(value) = store.get(&key).await.map_err(err)?
            && let Ok(instance) = serde_json::from_slice::<Instance>(&value)
        {
            found.push(instance);
        }
    }
    found.sort_by(|a, b| (&a.service, &a.instance).cmp(&(&b.service, &b.instance)));
    Ok(found)
}

/// Registers `me` until `stopped`, refreshing the entry every heartbeat, then deletes it.
/// Runs in the background; registry outages are retried, never fatal.
pub fn register(
    js: jetstream::Context,
    settings: DiscoverySettings,
    replicas: usize,
    me: Instance,
    stopped: Shutdown,
) -> Instance {
    let entry = me.clone();
    tokio::spawn(async move {
        let key = format!("{}.{}", entry.service, entry.instance);
        let value: bytes::Bytes = serde_json::to_vec(&entry).unwrap_or_default().into();
        let heartbeat = Duration::from_millis(settings.heartbeat_ms);
        let mut store = None;
        loop {
            if store.is_none() {
                store = bucket(&js, &settings, replicas)
                    .await
                    .map_err(|e| tracing::warn!(error = %e, "cannot open the registry yet"))
                    .ok();
            }
            if let Some(s) = &store
                && let Err(e) = s.put(&key, value.clone()).await
            {
                tracing::warn!(error = %e, "registry heartbeat failed");
            }
            tokio::select! {
                () = tokio::time::sleep(heartbeat) => {}
                () = stopped.clone().wait() => break,
            }
        }
        if let Some(s) = store {
            match s.delete(&key).await {
                Ok(()) => tracing::info!(%key, "deregistered"),
                Err(e) => tracing::warn!(%key, error = %e, "cannot deregister; the entry expires"),
            }
        }
    });
    me
}

/// The live instances of `service`, watched until `stopped`; `configured` while none is
/// registered.
pub(super) fn watch(
    js: jetstream::Context,
    settings: DiscoverySettings,
    replicas: usize,
    service: &str,
    configured: Vec<Instance>,
    stopped: Shutdown,
) -> Members {
    let (feed, members) = tokio::sync::watch::channel(Arc::new(configured.clone()));
    let service = service.to_owned();
    tokio::spawn(async move {
        let ttl = Duration::from_secs(settings.ttl_secs);
        // Key → the instance and when its entry was last written.
        let mut seen: BTreeMap<String, (Instance, Instant)> = BTreeMap::new();
        let mut backoff = Duration::from_millis(100);
        loop {
            let watching = async {
                let store = bucket(&js, &settings, replicas).await?;
                store
                    .watch_with_history(format!("{service}.*"))
                    .await
                    .map_err(err)
            };
            let mut entries = match watching.await {
                Ok(w) => {
                    backoff = Duration::from_millis(100);
                    w
                }
                Err(e) => {
                    tracing::warn!(%service, error = %e, "cannot watch the registry; keeping the last view");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stopped.clone().wait() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let mut expiry = tokio::time::interval(ttl / 4);
            loop {
                tokio::select! {
                    entry = entries.next() => match entry {
                        Some(Ok(entry)) => apply(&mut seen, &entry, ttl),
                        Some(Err(e)) => {
                            tracing::warn!(%service, error = %e, "registry watch failed; rewatching");
                            break;
                        }
                        None => break,
                    },
                    _ = expiry.tick() => seen.retain(|_, (_, at)| at.elapsed() < ttl),
                    () = stopped.clone().wait() => return,
                    () = feed.closed() => return,
                }
                let mut listed: Vec<Instance> = seen.values().map(|(i, _)| i.clone()).collect();
                if listed.is_empty() {
                    listed.clone_from(&configured);
                }
                feed.send_if_modified(|current| {
                    let changed = **current != listed;
                    if changed {
                        *current = Arc::new(listed);
                    }
                    changed
                });
            }
        }
    });
    members
}

/// Takes one registry entry into `seen`: a put adds or refreshes, a delete or purge removes.
fn apply(seen: &mut BTreeMap<String, (Instance, Instant)>, entry: &kv::Entry, ttl: Duration) {
    match entry.operation {
        kv::Operation::Put => {
            let Ok(instance) = serde_json::from_slice::<Instance>(&entry.value) else {
                return;
            };
            // A replayed entry is as old as its write, not as its delivery.
            let written_ms =
                i64::try_from(entry.created.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
            let age = u64::try_from(crate::now_millis() - written_ms).unwrap_or(0);
            let age = Duration::from_millis(age).min(ttl);
            let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            seen.insert(entry.key.clone(), (instance, at));
        }
        kv::Operation::Delete | kv::Operation::Purge => {
            seen.remove(&entry.key);
        }
    }
}
