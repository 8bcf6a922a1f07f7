//! The services behind the edge: one lazily connected tonic `Channel` per context (one HTTP/2
//! connection, reused by every call), plus the storefront, served in-process. Every upstream
//! is the same boxed tower service, so the transcoder, the passthrough and the storefront call
//! them alike. A context that is down answers UNAVAILABLE; nothing fails at start.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use polyshop_platform::config::Settings;
use tonic::{body::Body, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tower::{BoxError, ServiceExt, util::BoxCloneSyncService};

use crate::unary::UnaryClient;

/// A gRPC upstream as a tower service.
pub type Service = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, UpstreamError>;

/// A transport failure reaching an upstream. A concrete type rather than a bare `BoxError`,
/// which trips rustc's higher-ranked inference inside tonic's client futures.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct UpstreamError(pub BoxError);

impl UpstreamError {
    /// Wraps any transport error.
    pub fn new(e: impl Into<BoxError>) -> Self {
        Self(e.into())
    }
}

/// The context the edge serves itself.
pub const LOCAL: &str = "storefront";

/// How long a readiness probe waits for one upstream.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The configured URL of each remote context.
pub fn urls(settings: &Settings) -> Vec<(&'static str, String)> {
    vec![
        ("user", settings.user.url()),
        ("catalog", settings.catalog.url()),
        ("inventory", settings.inventory.service().url()),
        ("order", settings.order.url()),
        ("payment", settings.payment.url()),
        ("notification", settings.notification.url()),
    ]
}

/// How many HTTP/2 connections each remote context gets: one per async worker, at most four.
/// One connection is one task on each side, so more than one spreads the framing work over
/// the workers; with a single worker a second connection only halves how many requests share
/// a write (on two cores, one connection gave the edge a lower p99 than two).
fn connections() -> usize {
    tokio::runtime::Handle::try_current()
        .map_or(1, |runtime| runtime.metrics().num_workers())
        .clamp(1, 4)
}

/// One remote context: its URL and a few lazily connected channels, used in turn, and the
/// lean client the transcoder's unary calls use (plain-text URLs only).
struct Remote {
    url: String,
    channels: Vec<Channel>,
    services: Vec<Service>,
    next: AtomicUsize,
    unary: Option<UnaryClient>,
}

/// Every upstream by context name.
#[derive(Clone)]
pub struct Upstreams {
    remote: Arc<HashMap<String, Remote>>,
    local: Option<Service>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<(&String, &String)> = self.remote.iter().map(|(k, r)| (k, &r.url)).collect();
        f.debug_struct("Upstreams")
            .field("remote", &names)
            .finish_non_exhaustive()
    }
}

/// Why an upstream URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("upstream {context}: invalid URL {url}")]
pub struct UrlError {
    context: String,
    url: String,
}

impl Upstreams {
    /// Lazy channels to `urls`; nothing is dialled until the first call.
    ///
    /// # Errors
    /// [`UrlError`] for a malformed URL.
    pub fn connect(urls: &[(&str, String)], timeout: Duration) -> Result<Self, UrlError> {
        let mut remote = HashMap::new();
        let connections = connections();
        for (context, url) in urls {
            let endpoint = Channel::from_shared(url.clone())
                .map_err(|_| UrlError {
                    context: (*context).to_owned(),
                    url: url.clone(),
                })?
                .connect_timeout(Duration::from_secs(1).min(timeout))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10));
            let channels: Vec<Channel> =
                (0..connections).map(|_| endpoint.connect_lazy()).collect();
            let services = channels
                .iter()
                .map(|c| BoxCloneSyncService::new(c.clone().map_err(UpstreamError::new)))
                .collect();
            remote.insert(
                (*context).to_owned(),
                Remote {
                    url: url.clone(),
                    channels,
                    services,
                    next: AtomicUsize::new(0),
                    unary: UnaryClient::new(url, connections, Duration::from_secs(1).min(timeout)),
                },
            );
        }
        Ok(Self {
            remote: Arc::new(remote),
            local: None,
        })
    }

    /// Serves the local context with `service`.
    pub fn set_local(&mut self, service: Service) {
        self.local = Some(service);
    }

    /// The upstream of `context`.
    pub fn get(&self, context: &str) -> Option<Service> {
        if context == LOCAL {
            return self.local.clone();
        }
        let remote = self.remote.get(context)?;
        let i = remote.next.fetch_add(1, Ordering::Relaxed) % remote.services.len();
        remote.services.get(i).cloned()
    }

    /// The lean unary client of a remote context, if its URL allows one.
    pub fn unary(&self, context: &str) -> Option<&UnaryClient> {
        self.remote.get(context)?.unary.as_ref()
    }

    /// A channel of a remote context (for generated clients).
    pub fn channel(&self, context: &str) -> Option<Channel> {
        self.remote.get(context)?.channels.first().cloned()
    }

    /// Asks every remote context's health service; `(context, serving)` sorted by name.
    pub async fn probe(&self) -> Vec<(String, bool)> {
        let targets: Vec<(String, Channel)> = self
            .remote
            .iter()
            .filter_map(|(name, r)| Some((name.clone(), r.channels.first()?.clone())))
            .collect();
        let checks = targets.into_iter().map(|(name, channel)| async move {
            let mut client = HealthClient::new(channel);
            let check = client.check(HealthCheckRequest {
                service: String::new(),
            });
            let serving = matches!(
                tokio::time::timeout(PROBE_TIMEOUT, check).await,
                Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32
            );
            (name, serving)
        });
        let mut out = futures::future::join_all(checks).await;
        out.sort();
        out
    }
}
