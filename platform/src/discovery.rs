//! Service registry and discovery over NATS JetStream KV (the bucket `polyshop_registry`),
//! like Consul's: an instance registers `<service>.<instance id>` → its URL, refreshes the
//! entry every heartbeat and deletes it on shutdown; an instance that dies without deleting
//! disappears once its entry is older than the bucket's TTL. Callers get a tonic channel that
//! balances over the live instances, re-reads the registry every poll interval (a cached
//! view, so a registry outage keeps the last known instances), and falls back to the
//! configured URL while no instance is registered.

use std::{collections::BTreeMap, time::Duration};

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint, channel::Change};

use crate::{config::DiscoverySettings, shutdown::Shutdown};

/// The KV bucket of the registry.
pub const BUCKET: &str = "polyshop_registry";

/// The key of the fallback endpoint in a discovered channel.
const FALLBACK: &str = "static";

/// One registered instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Service name (`catalog`).
    pub service: String,
    /// Unique per process start.
    pub instance: String,
    /// Where it serves gRPC.
    pub url: String,
    /// Registration time, epoch ms.
    pub started_at: i64,
}

/// Why the registry could not be used.
#[derive(Debug, thiserror::Error)]
#[error("service registry: {0}")]
pub struct RegistryError(String);

impl RegistryError {
    /// An error saying `why`.
    pub fn new(why: String) -> Self {
        Self(why)
    }
}

fn err(e: impl std::fmt::Display) -> RegistryError {
    RegistryError(e.to_string())
}

/// The registry bucket, created (or updated to `settings`' TTL) if needed.
///
/// # Errors
/// When JetStream cannot be reached.
pub async fn bucket(
    js: &jetstream::Context,
    settings: &DiscoverySettings,
) -> Result<kv::Store, RegistryError> {
    js.create_or_update_key_value(kv::Config {
        bucket: BUCKET.into(),
        description: "Polyshop service instances: <service>.<instance> -> JSON".into(),
        history: 1,
        max_age: Duration::from_secs(settings.ttl_secs),
        storage: jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .map_err(err)
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

/// Registers `service` at `url` until `stopped`, refreshing the entry every heartbeat, then
/// deletes it. Runs in the background; registry outages are retried, never fatal.
pub fn register(
    js: jetstream::Context,
    settings: DiscoverySettings,
    service: &str,
    url: String,
    stopped: Shutdown,
) -> Instance {
    let instance = Instance {
        service: service.to_owned(),
        instance: crate::new_id(),
        url,
        started_at: crate::now_millis(),
    };
    let entry = instance.clone();
    tokio::spawn(async move {
        let key = format!("{}.{}", entry.service, entry.instance);
        let value: bytes::Bytes = serde_json::to_vec(&entry).unwrap_or_default().into();
        let heartbeat = Duration::from_millis(settings.heartbeat_ms);
        let mut store = None;
        loop {
            if store.is_none() {
                store = bucket(&js, &settings)
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
    instance
}

/// A channel to `service` balancing over its registered instances, re-read every poll
/// interval until `stopped`; `fallback` (its configured URL) serves while none is registered.
/// `configure` sets timeouts on every endpoint.
///
/// # Errors
/// When `fallback` is not a valid URL.
pub fn channel(
    js: jetstream::Context,
    settings: DiscoverySettings,
    service: &str,
    fallback: &str,
    configure: impl Fn(Endpoint) -> Endpoint + Send + 'static,
    stopped: Shutdown,
) -> Result<Channel, RegistryError> {
    let fallback = configure(Endpoint::from_shared(fallback.to_owned()).map_err(err)?);
    let (channel, changes) = Channel::balance_channel::<String>(64);
    let service = service.to_owned();
    tokio::spawn(async move {
        // What the channel holds now: key → URL.
        let mut current: BTreeMap<String, String> = BTreeMap::new();
        let mut store = None;
        loop {
            if store.is_none() {
                store = bucket(&js, &settings).await.ok();
            }
            let listed = match &store {
                Some(s) => instances(s).await.ok(),
                None => None,
            };
            // Nothing known yet and no registry: the fallback serves meanwhile.
            let listed = listed.or_else(|| current.is_empty().then(Vec::new));
            // A failed read keeps the last view (cache with fallback), it does not empty it.
            if let Some(listed) = listed {
                let mut wanted: BTreeMap<String, String> = listed
                    .into_iter()
                    .filter(|i| i.service == service)
                    .map(|i| (i.instance, i.url))
                    .collect();
                if wanted.is_empty() {
                    wanted.insert(FALLBACK.into(), fallback.uri().to_string());
                }
                for (key, _) in current.iter().filter(|(k, _)| !wanted.contains_key(*k)) {
                    tracing::info!(%service, instance = %key, "instance gone");
                    let _ = changes.send(Change::Remove(key.clone())).await;
                }
                for (key, url) in wanted.iter().filter(|(k, _)| !current.contains_key(*k)) {
                    let endpoint = if key == FALLBACK {
                        Some(fallback.clone())
                    } else {
                        Endpoint::from_shared(url.clone()).ok().map(&configure)
                    };
                    if let Some(endpoint) = endpoint {
                        tracing::info!(%service, instance = %key, %url, "instance found");
                        let _ = changes.send(Change::Insert(key.clone(), endpoint)).await;
                    }
                }
                current = wanted;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(settings.poll_ms)) => {}
                () = stopped.clone().wait() => return,
            }
        }
    });
    Ok(channel)
}
