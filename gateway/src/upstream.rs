//! The services behind the edge: per remote context a discovery pool of its instances, each
//! with a few lazily connected HTTP/2 connections, plus the storefront, served in-process.
//! Every upstream is the same boxed tower service, so the transcoder, the passthrough and the
//! storefront call them alike. A context that is down answers UNAVAILABLE; nothing fails at
//! start.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use polyshop_platform::{
    config::Settings,
    discovery::{Discovery, Outcome, Picked, Pool, never_sent},
    resilience::CircuitBreaker,
};
use tonic::{body::Body, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tower::{BoxError, ServiceExt, util::BoxCloneSyncService};

use crate::unary::UnaryClient;

/// Counts one call sent (or about to be sent) to `upstream`, an attempt on one instance: the
/// figure that shows what the edge spared its contexts (a refused request is never counted).
pub fn count_call(upstream: &str) {
    polyshop_platform::metrics::inc(
        "polyshop_edge_upstream_calls_total",
        "Calls the edge sent to a context, per attempt.",
        &[("upstream", upstream)],
    );
}

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

/// When a context's circuit at the edge opens, and for how long.
#[derive(Debug, Clone)]
pub struct Breaker {
    /// Failed calls in a row that open it.
    pub failures: u32,
    /// How long it stays open before a probe.
    pub cool_down: Duration,
}

/// How long a readiness probe waits for one upstream.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The configured URL of each remote context (every context of the contracts but the edge's).
pub fn urls(settings: &Settings) -> Vec<(&'static str, String)> {
    settings
        .contexts()
        .into_iter()
        .map(|(name, s)| (name, s.url()))
        .collect()
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

/// One instance of a remote context: a few lazily connected channels, used in turn, and the
/// lean client the transcoder's unary calls use (plain-text URLs only: with TLS between
/// services, every call goes through the channels, which dial over TLS).
pub struct Remote {
    channels: Vec<Channel>,
    services: Vec<Service>,
    next: AtomicUsize,
    unary: Option<UnaryClient>,
}

impl Remote {
    fn new(url: &str, configured: &str, timeout: Duration) -> Option<Self> {
        let connections = connections();
        let tls = polyshop_platform::tls::current().is_some();
        let endpoint = polyshop_platform::tls::instance_endpoint(url, configured)
            .ok()?
            .connect_timeout(Duration::from_secs(1).min(timeout))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        let channels: Vec<Channel> = (0..connections).map(|_| endpoint.connect_lazy()).collect();
        let services = channels
            .iter()
            .map(|c| BoxCloneSyncService::new(c.clone().map_err(UpstreamError::new)))
            .collect();
        Some(Self {
            channels,
            services,
            next: AtomicUsize::new(0),
            unary: if tls {
                None
            } else {
                UnaryClient::new(url, connections, Duration::from_secs(1).min(timeout))
            },
        })
    }

    /// The lean unary client, if the URL allows one.
    pub fn unary(&self) -> Option<&UnaryClient> {
        self.unary.as_ref()
    }

    /// One of its channels, in turn, as a tower service.
    pub fn service(&self) -> Service {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.services.len();
        self.services[i].clone()
    }
}

/// One remote context: its instances, and its circuit (open while every instance fails).
struct Context {
    pool: Arc<Pool<Remote>>,
    breaker: Arc<CircuitBreaker>,
}

/// Every upstream by context name.
#[derive(Clone)]
pub struct Upstreams {
    remote: Arc<HashMap<String, Context>>,
    /// The contexts served in this process (the storefront, governance), by name.
    local: HashMap<String, Service>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pools: Vec<&Arc<Pool<Remote>>> = self.remote.values().map(|c| &c.pool).collect();
        f.debug_struct("Upstreams")
            .field("remote", &pools)
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
    /// A pool per context of `urls`, following `discovery`; nothing is dialled until the
    /// first call.
    ///
    /// # Errors
    /// [`UrlError`] for a malformed configured URL.
    pub fn connect(
        discovery: &Discovery,
        urls: &[(&str, String)],
        timeout: Duration,
        breaker: &Breaker,
    ) -> Result<Self, UrlError> {
        let mut remote = HashMap::new();
        for (context, url) in urls {
            if Channel::from_shared(url.clone()).is_err() {
                return Err(UrlError {
                    context: (*context).to_owned(),
                    url: url.clone(),
                });
            }
            let configured = url.clone();
            let pool = discovery.pool(context, url, move |instance| {
                Remote::new(&instance.url, &configured, timeout)
            });
            let breaker = Arc::new(CircuitBreaker::new(
                &format!("edge.{context}"),
                breaker.failures,
                breaker.cool_down,
            ));
            remote.insert((*context).to_owned(), Context { pool, breaker });
        }
        Ok(Self {
            remote: Arc::new(remote),
            local: HashMap::new(),
        })
    }

    /// Serves `context` in this process with `service`.
    pub fn set_local(&mut self, context: &str, service: Service) {
        self.local.insert(context.to_owned(), service);
    }

    /// Each remote context and its instances.
    pub fn pools(&self) -> Vec<(String, Arc<Pool<Remote>>)> {
        let mut pools: Vec<_> = self
            .remote
            .iter()
            .map(|(name, c)| (name.clone(), c.pool.clone()))
            .collect();
        pools.sort_by(|a, b| a.0.cmp(&b.0));
        pools
    }

    /// The upstream of `context`: the local service, or one balancing each call over the
    /// context's instances.
    pub fn get(&self, context: &str) -> Option<Service> {
        if let Some(local) = self.local.get(context) {
            return Some(local.clone());
        }
        let remote = self.remote.get(context)?;
        Some(BoxCloneSyncService::new(Balance {
            pool: remote.pool.clone(),
            breaker: remote.breaker.clone(),
        }))
    }

    /// The instances of a remote context (`None` for the local one).
    pub fn pool(&self, context: &str) -> Option<&Arc<Pool<Remote>>> {
        self.remote.get(context).map(|c| &c.pool)
    }

    /// Applies a runtime breaker setting (`breaker_failures`, `breaker_cool_down_ms`) to every
    /// remote context's circuit.
    ///
    /// # Errors
    /// A value of the wrong kind.
    pub fn tune_breakers(
        &self,
        setting: &str,
        value: Option<&polyshop_platform::runtime_config::Value>,
    ) -> Result<(), String> {
        for context in self.remote.values() {
            polyshop_platform::runtime_config::tune_breaker(&context.breaker, setting, value)?;
        }
        Ok(())
    }

    /// The circuit of a remote context.
    pub fn breaker(&self, context: &str) -> Option<&CircuitBreaker> {
        self.remote.get(context).map(|c| c.breaker.as_ref())
    }

    /// Asks each remote context's health service on one of its instances (another if that
    /// one does not answer); `(context, serving)` sorted by name.
    pub async fn probe(&self) -> Vec<(String, bool)> {
        let checks = self
            .remote
            .iter()
            .map(|(name, Context { pool, .. })| async move {
                (name.clone(), pool_serves(pool).await.is_ok())
            });
        let mut out = futures::future::join_all(checks).await;
        out.sort();
        out
    }

    /// The remote contexts, sorted by name.
    pub fn contexts(&self) -> Vec<String> {
        let mut names: Vec<String> = self.remote.keys().cloned().collect();
        names.sort();
        names
    }

    /// Asks `context`'s health service as [`Self::probe`] does, for the full health check:
    /// why not when it does not serve.
    ///
    /// # Errors
    /// When no instance of it serves, with why.
    pub async fn probe_context(&self, context: &str) -> Result<String, String> {
        let Context { pool, .. } = self
            .remote
            .get(context)
            .ok_or_else(|| format!("{context} is not an upstream"))?;
        pool_serves(pool).await
    }
}

/// Whether one instance of `pool` serves (another asked if the first does not).
async fn pool_serves(pool: &Pool<Remote>) -> Result<String, String> {
    let first = pool
        .pick(None)
        .ok_or_else(|| format!("no instance of {} is known", pool.service()))?;
    if serves(&first).await {
        return Ok("SERVING".into());
    }
    match pool.pick(Some(&first)) {
        Some(second) if serves(&second).await => Ok("SERVING (a second instance)".into()),
        _ => Err("no instance answers SERVING".into()),
    }
}

async fn serves(instance: &Picked<Remote>) -> bool {
    let Some(channel) = instance.client().channels.first().cloned() else {
        return false;
    };
    let mut client = HealthClient::new(channel);
    let check = client.check(HealthCheckRequest {
        service: String::new(),
    });
    let serving = matches!(
        tokio::time::timeout(PROBE_TIMEOUT, check).await,
        Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32
    );
    instance.record(if serving {
        Outcome::Answered
    } else {
        Outcome::Failed
    });
    serving
}

/// Streams and passthrough calls: each call to the pool's pick, its end fed back to that
/// instance's outlier record.
#[derive(Clone)]
struct Balance {
    pool: Arc<Pool<Remote>>,
    breaker: Arc<CircuitBreaker>,
}

impl tower::Service<http::Request<Body>> for Balance {
    type Response = http::Response<Body>;
    type Error = UpstreamError;
    type Future = futures::future::BoxFuture<'static, Result<http::Response<Body>, UpstreamError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), UpstreamError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let pool = self.pool.clone();
        let breaker = self.breaker.clone();
        Box::pin(async move {
            if !breaker.allow() {
                return Err(UpstreamError::new(format!(
                    "the circuit of {} is open",
                    pool.service()
                )));
            }
            let picked = pool.pick(None).ok_or_else(|| {
                UpstreamError::new(format!("no instance of {} is known", pool.service()))
            })?;
            let result = picked.client().service().oneshot(request).await;
            let outcome = match &result {
                Ok(r) if r.headers().get("grpc-status").is_some_and(|v| v == "14") => {
                    Outcome::Failed
                }
                Ok(_) => Outcome::Answered,
                Err(e) if never_sent(e.0.as_ref()) => Outcome::Refused,
                Err(_) => Outcome::Failed,
            };
            picked.record(outcome);
            breaker.record(outcome == Outcome::Answered);
            result
        })
    }
}
