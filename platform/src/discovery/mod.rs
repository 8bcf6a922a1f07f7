//! Service discovery: where a context's instances are, and how a caller picks one.
//!
//! Three sources feed a caller's view of a context ([`Members`]): `static` (the configured
//! URLs), `nats` (the registry in JetStream KV, *watched*: a registration or deregistration
//! reaches callers at once, a crashed instance leaves after the TTL) and `dns` (the context
//! URL's host re-resolved: a Kubernetes headless Service). A [`Pool`] keeps one client per
//! instance and picks by the caller's [`Policy`], passing over instances that outlier ejection
//! has taken out ([`outlier`]). [`Balanced`] is a pool of tonic channels that generated
//! clients call like a channel.

mod balanced;
mod dns;
pub mod outlier;
pub mod policy;
mod pool;
mod registry;

use std::sync::Arc;

use async_nats::jetstream;
use serde::{Deserialize, Serialize};

pub use balanced::{Balanced, never_sent};
pub use outlier::{Outcome, OutlierSettings};
pub use policy::Policy;
pub use pool::{Balancing, Member, Picked, Pool};
pub use registry::{BUCKET, bucket, instances, register};

use crate::{
    config::{DiscoveryMode, DiscoverySettings},
    shutdown::Shutdown,
};

/// A caller's live view of one context's instances.
pub type Members = tokio::sync::watch::Receiver<Arc<Vec<Instance>>>;

/// One instance of a context.
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
    /// Its version (for canary weights).
    #[serde(default)]
    pub version: String,
    /// Its zone.
    #[serde(default)]
    pub zone: String,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Its share of traffic relative to the context's other instances.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// False while it drains: callers pass over it.
    #[serde(default = "healthy")]
    pub healthy: bool,
}

fn default_weight() -> u32 {
    100
}

fn healthy() -> bool {
    true
}

impl Instance {
    /// An instance of `service` at `url` with default metadata.
    pub fn new(service: &str, instance: &str, url: String) -> Self {
        Self {
            service: service.to_owned(),
            instance: instance.to_owned(),
            url,
            started_at: 0,
            version: String::new(),
            zone: String::new(),
            tags: Vec::new(),
            weight: default_weight(),
            healthy: true,
        }
    }

    /// The same process (its metadata may have changed).
    pub fn same_as(&self, other: &Self) -> bool {
        self.instance == other.instance && self.url == other.url
    }
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

/// Discovery for one process: its settings and, in `nats` mode, the registry's JetStream.
#[derive(Clone)]
pub struct Discovery {
    settings: DiscoverySettings,
    replicas: usize,
    js: Option<jetstream::Context>,
    stopped: Shutdown,
    // `fixed` owns its never-fired trigger (dropping it would fire the shutdown).
    _unfired: Option<Arc<crate::shutdown::Trigger>>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("mode", &self.settings.mode)
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Discovery by `settings`; `js` is the registry's JetStream (used in `nats` mode, whose
    /// bucket is kept at `replicas` copies). Watchers and registrations end with `stopped`.
    pub fn new(
        settings: DiscoverySettings,
        replicas: usize,
        js: Option<jetstream::Context>,
        stopped: Shutdown,
    ) -> Self {
        Self {
            settings,
            replicas,
            js,
            stopped,
            _unfired: None,
        }
    }

    /// Static discovery with default balancing: each service at its configured URL (for
    /// what starts before the process's discovery does).
    pub fn fixed() -> Self {
        let (unfired, stopped) = crate::shutdown::channel();
        Self {
            settings: DiscoverySettings {
                mode: DiscoveryMode::Static,
                ..DiscoverySettings::default()
            },
            replicas: 1,
            js: None,
            stopped,
            _unfired: Some(Arc::new(unfired)),
        }
    }

    /// Discovery by `settings` for the process `name`: in `nats` mode, or when `nats.url` is
    /// set (the edge shares rate limits over it), it connects to NATS (in the background if
    /// NATS is not up yet).
    ///
    /// # Errors
    /// When the NATS URL is invalid.
    pub async fn connect(
        settings: &crate::config::Settings,
        name: &str,
        stopped: Shutdown,
    ) -> Result<Self, RegistryError> {
        let js = if settings.discovery.mode == DiscoveryMode::Nats || settings.nats.url.is_some() {
            let client = crate::events::identity::connect_as(settings, name)
                .await
                .map_err(err)?;
            Some(jetstream::new(client))
        } else {
            None
        };
        Ok(Self::new(
            settings.discovery.clone(),
            settings.nats.replicas,
            js,
            stopped,
        ))
    }

    /// The registry's JetStream (`nats` mode only).
    pub fn jetstream(&self) -> Option<&jetstream::Context> {
        self.js.as_ref()
    }

    /// The settings.
    pub fn settings(&self) -> &DiscoverySettings {
        &self.settings
    }

    /// Registers this process as an instance of `service` at `url` (in `nats` mode) until
    /// discovery stops; `None` in the other modes.
    pub fn register(&self, service: &str, url: String) -> Option<Instance> {
        let js = self
            .js
            .clone()
            .filter(|_| self.settings.mode == DiscoveryMode::Nats)?;
        let s = &self.settings;
        let me = Instance {
            started_at: crate::now_millis(),
            version: s.version.clone(),
            zone: s.zone.clone(),
            tags: s.tags.clone(),
            weight: s.weight,
            ..Instance::new(service, &crate::new_id(), url)
        };
        let registered = register(
            js,
            s.clone(),
            self.replicas,
            me.clone(),
            self.stopped.clone(),
        );
        tracing::info!(service, instance = %registered.instance, url = %registered.url, "registered");
        Some(me)
    }

    /// The live instances of `service`, whose configured URL is `url`.
    pub fn members(&self, service: &str, url: &str) -> Members {
        let configured: Vec<Instance> = self
            .settings
            .endpoints
            .get(service)
            .filter(|urls| !urls.is_empty())
            .cloned()
            .unwrap_or_else(|| vec![url.to_owned()])
            .into_iter()
            .map(|u| Instance::new(service, &u, u.clone()))
            .collect();
        match (&self.settings.mode, &self.js) {
            (DiscoveryMode::Nats, Some(js)) => registry::watch(
                js.clone(),
                self.settings.clone(),
                self.replicas,
                service,
                configured,
                self.stopped.clone(),
            ),
            (DiscoveryMode::Dns, _) => {
                dns::resolve(&self.settings, service, url, self.stopped.clone())
            }
            _ => tokio::sync::watch::channel(Arc::new(configured)).1,
        }
    }

    /// The caller's balancing settings for calls to `service`.
    pub fn balancing(&self, service: &str) -> Balancing {
        Balancing {
            policy: self
                .settings
                .policies
                .get(service)
                .copied()
                .unwrap_or(self.settings.policy),
            outlier: self.settings.outlier(),
            version_weights: self.settings.version_weights.clone(),
        }
    }

    /// A pool over the instances of `service` (configured at `url`), with `client` made for
    /// each instance.
    pub fn pool<T: Send + Sync + 'static>(
        &self,
        service: &str,
        url: &str,
        client: impl Fn(&Instance) -> Option<T> + Send + Sync + 'static,
    ) -> Arc<Pool<T>> {
        Pool::follow(
            service,
            self.members(service, url),
            self.balancing(service),
            client,
        )
    }

    /// A channel-like client over the instances of `service`; `configure` sets each
    /// endpoint's timeouts. With TLS between services ([`crate::tls`]), every endpoint dials
    /// `https://` with the process's CA and client certificate, whatever `configure` does.
    ///
    /// # Errors
    /// When `url` is malformed.
    pub fn balanced(
        &self,
        service: &str,
        url: &str,
        configure: impl Fn(tonic::transport::Endpoint) -> tonic::transport::Endpoint
        + Send
        + Sync
        + 'static,
    ) -> Result<Balanced, RegistryError> {
        crate::tls::endpoint(url).map_err(err)?;
        let configured = url.to_owned();
        Ok(Balanced::new(self.pool(service, url, move |instance| {
            let endpoint = crate::tls::instance_endpoint(&instance.url, &configured).ok()?;
            Some(configure(endpoint).connect_lazy())
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_services_own_policy_wins_over_the_callers_default() {
        let settings = DiscoverySettings {
            policy: Policy::LeastOutstanding,
            policies: [("catalog".to_owned(), Policy::Random)].into(),
            ..DiscoverySettings::default()
        };
        let (_keep, stopped) = crate::shutdown::channel();
        let discovery = Discovery::new(settings, 1, None, stopped);
        assert_eq!(discovery.balancing("catalog").policy, Policy::Random);
        assert_eq!(
            discovery.balancing("payment").policy,
            Policy::LeastOutstanding
        );
    }
}
