//! The edge's shared state, built once at start: route table, upstreams (with the in-process
//! storefront), token verification, rate limits, the load-shedding semaphore, the OpenAPI
//! document, the local gRPC services (reflection listing only exposed services, health) and
//! the last readiness answer.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use polyshop::{
    admin::v1::admin_service_server::AdminServiceServer,
    storefront::v1::storefront_service_server::StorefrontServiceServer,
};
use polyshop_platform::{
    auth::{Principal, UserTokenVerifier},
    config::{GatewaySettings, Settings},
    contract,
    discovery::Discovery,
    runtime_config::{self, RuntimeConfig},
    server::{ServeError, StartError},
};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tonic::{Code, Status};
use tonic_health::server::HealthReporter;
use tonic_types::{ErrorDetails, StatusExt};
use tower::{ServiceExt, util::BoxCloneSyncService};

use crate::{
    auth::EdgeAuth,
    errors::EdgeError,
    governance::Governance,
    openapi,
    ratelimit::{
        self, RateLimiter,
        in_flight::{PerIp, Slot},
    },
    routes::{LimitClass, RouteTable},
    storefront::{Parts, Storefront},
    upstream::{self, UpstreamError, Upstreams},
};

/// The client's address, put into every request's extensions by the server: the socket peer,
/// or what a trusted proxy says in `X-Forwarded-For` (port 0 then).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// What a handler tells the access log about a request (response extension).
#[derive(Debug, Clone, Default)]
pub struct AccessNote {
    /// `json`, `grpc`, `grpc-web`, `http` (probes) or `shed`.
    pub protocol: &'static str,
    /// The gRPC path of the RPC called, or a probe's path: set only once the route is known,
    /// since it becomes a metric label and a client can send any path.
    pub rpc: Option<String>,
    /// The calling user's id.
    pub user: Option<String>,
}

impl AccessNote {
    /// A request shed before it was handled.
    pub fn shed() -> Self {
        Self {
            protocol: "shed",
            ..Self::default()
        }
    }
}

/// Everything request handling shares.
pub struct Edge {
    /// Exposed routes and RPCs.
    pub routes: RouteTable,
    /// The services behind the edge.
    pub upstreams: Upstreams,
    /// Token checks.
    pub auth: EdgeAuth,
    /// Token buckets.
    pub limiter: RateLimiter,
    /// Gateway settings.
    pub settings: GatewaySettings,
    /// Deadline of one upstream call, as configured.
    pub timeout: Duration,
    /// The deadline the runtime configuration set (`request_timeout_ms`), in ms; 0: none.
    timeout_override_ms: AtomicU64,
    /// Requests in flight; none left means shed.
    pub in_flight: Arc<Semaphore>,
    /// Requests in flight per client address; a full address is refused with 429.
    pub per_ip: Arc<PerIp>,
    /// `GET /openapi.json`.
    pub openapi: Bytes,
    /// `/graphql`: the schema built from the same routes.
    pub graphql: crate::graphql::Endpoint,
    /// Reflection and health, served by the edge.
    pub local_grpc: upstream::Service,
    /// The edge's own health status.
    pub health: HealthReporter,
    /// `/readyz`'s last answer, and whether every context served.
    pub readiness: Memo<(StatusCode, Bytes, bool)>,
    /// The full health check (`GET /health`), set once the edge runs
    /// ([`crate::server::full_health`]).
    pub full_health: std::sync::OnceLock<polyshop_platform::server::health::Health>,
    draining: AtomicBool,
}

/// How long one readiness answer is reused: a probe fans out a health RPC to every context,
/// and nothing stops a client from probing in a loop.
pub const READINESS_TTL: Duration = Duration::from_secs(1);
/// How long an answer with a context not serving is reused: a starting system's contexts
/// arrive within milliseconds of each other, and a degraded answer kept a whole second made
/// every cold start a second longer (`just bench`, docs/performance.md).
pub const DEGRADED_READINESS_TTL: Duration = Duration::from_millis(50);

/// A value computed at most once per `ttl`; callers that arrive while it is being computed
/// wait for that computation and share its result.
#[derive(Debug)]
pub struct Memo<T> {
    ttl: Duration,
    last: Mutex<Option<(Instant, Duration, T)>>,
}

impl<T: Clone> Memo<T> {
    /// Keeps each value for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            last: Mutex::new(None),
        }
    }

    /// The value, computed by `compute` when the last one is older than the ttl.
    pub async fn get(&self, compute: impl Future<Output = T>) -> T {
        self.get_for(compute, |_| self.ttl).await
    }

    /// The value, computed by `compute` when the last one is older than what `ttl_of` said
    /// for it.
    pub async fn get_for(
        &self,
        compute: impl Future<Output = T>,
        ttl_of: impl FnOnce(&T) -> Duration,
    ) -> T {
        // Held across `compute`, so concurrent callers queue here and find the fresh value.
        let mut last = self.last.lock().await;
        if let Some((at, ttl, value)) = last.as_ref()
            && at.elapsed() < *ttl
        {
            return value.clone();
        }
        let value = compute.await;
        *last = Some((Instant::now(), ttl_of(&value), value.clone()));
        value
    }
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

fn start_error(e: impl std::fmt::Display) -> StartError {
    StartError::Other(format!("gateway: {e}"))
}

impl Edge {
    /// Builds the edge from `settings`.
    ///
    /// # Errors
    /// [`StartError`] for a bad contract binding, upstream URL or reflection set.
    pub fn build(settings: &Settings, discovery: &Discovery) -> Result<Arc<Self>, StartError> {
        let gateway = settings.gateway.clone();
        let timeout = Duration::from_millis(gateway.request_timeout_ms.max(1));
        let routes = RouteTable::from_pool(contract::pool()).map_err(start_error)?;
        let urls = upstream::urls(settings);
        let breaker = upstream::Breaker {
            failures: gateway.breaker_failures,
            cool_down: Duration::from_millis(gateway.breaker_cool_down_ms),
        };
        let mut upstreams =
            Upstreams::connect(discovery, &urls, timeout, &breaker).map_err(start_error)?;
        // The storefront's parts balance over the same instances, with their own connections.
        let part = |name: &str| {
            let url = urls
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, u)| u.as_str())
                .ok_or_else(|| start_error(format!("no upstream {name}")))?;
            discovery
                .balanced(name, url, move |e| {
                    e.connect_timeout(Duration::from_secs(1).min(timeout))
                        .tcp_nodelay(true)
                })
                .map_err(start_error)
        };
        let storefront = Storefront::new(
            Parts {
                user: part("user")?,
                catalog: part("catalog")?,
                order: part("order")?,
                notification: part("notification")?,
            },
            timeout.mul_f64(0.75),
        );
        let server = StorefrontServiceServer::new(storefront);
        upstreams.set_local(
            contract::EDGE_CONTEXT,
            BoxCloneSyncService::new(ServiceExt::<http::Request<tonic::body::Body>>::map_err(
                server,
                |e: std::convert::Infallible| -> UpstreamError { match e {} },
            )),
        );
        let governance = Governance::new(
            upstreams.pools(),
            discovery.members("gateway", &crate::edge_url(gateway.listen, false)),
            settings.clone(),
        );
        upstreams.set_local(
            "admin",
            BoxCloneSyncService::new(ServiceExt::<http::Request<tonic::body::Body>>::map_err(
                AdminServiceServer::new(governance),
                |e: std::convert::Infallible| -> UpstreamError { match e {} },
            )),
        );
        let verifier = UserTokenVerifier::remote(
            settings.auth.issuer.clone(),
            settings.auth.audience.clone(),
            part("user")?,
        );
        let (health, local_grpc) = local_grpc(&routes)?;
        let openapi = serde_json::to_vec(&openapi::document(&routes))
            .map_err(start_error)?
            .into();
        let graphql = crate::graphql::Endpoint::build(&routes, contract::pool(), &gateway)
            .map_err(start_error)?;
        let edge = Arc::new(Self {
            graphql,
            limiter: RateLimiter::new(&gateway),
            in_flight: Arc::new(Semaphore::new(gateway.max_concurrency.max(1))),
            per_ip: PerIp::new(gateway.max_concurrent_per_ip),
            settings: gateway,
            routes,
            upstreams,
            auth: EdgeAuth::new(verifier).following_user_events(discovery),
            timeout,
            timeout_override_ms: AtomicU64::new(0),
            openapi,
            local_grpc,
            health,
            readiness: Memo::new(READINESS_TTL),
            full_health: std::sync::OnceLock::new(),
            draining: AtomicBool::new(false),
        });
        if let Some(runtime) = runtime_config::process() {
            edge.follow(&runtime);
        }
        Ok(edge)
    }

    /// Applies the edge's runtime settings (rate limits, the upstream deadline, the circuits'
    /// thresholds) as they
    /// change, without a restart (decision 0021).
    pub fn follow(self: &Arc<Self>, runtime: &RuntimeConfig) {
        for spec in runtime_config::settings_of(runtime_config::GATEWAY) {
            let edge = Arc::downgrade(self);
            let setting = spec.name;
            let apply: runtime_config::Applier = match setting {
                "log" => continue,
                "request_timeout_ms" => Arc::new(move |value| {
                    let Some(edge) = edge.upgrade() else {
                        return Ok(());
                    };
                    edge.apply_timeout(value)
                }),
                "breaker_failures" | "breaker_cool_down_ms" => Arc::new(move |value| {
                    let Some(edge) = edge.upgrade() else {
                        return Ok(());
                    };
                    edge.upstreams.tune_breakers(setting, value)
                }),
                _ => Arc::new(move |value| {
                    let Some(edge) = edge.upgrade() else {
                        return Ok(());
                    };
                    edge.limiter.apply_setting(setting, value)
                }),
            };
            runtime.on(setting, apply);
        }
    }

    /// Sets the upstream deadline to a runtime `request_timeout_ms` (`None`: as configured).
    ///
    /// # Errors
    /// A value of the wrong kind.
    pub fn apply_timeout(&self, value: Option<&runtime_config::Value>) -> Result<(), String> {
        let ms = match value {
            None => 0,
            Some(runtime_config::Value::Millis(ms)) if *ms > 0 => *ms,
            Some(other) => return Err(format!("{other} is no request_timeout_ms")),
        };
        self.timeout_override_ms.store(ms, Ordering::Relaxed);
        Ok(())
    }

    /// The deadline of one upstream call now: the runtime setting, else the configured one.
    pub fn timeout(&self) -> Duration {
        match self.timeout_override_ms.load(Ordering::Relaxed) {
            0 => self.timeout,
            ms => Duration::from_millis(ms),
        }
    }

    /// The upstream deadline: the configured timeout, or less if the client asks
    /// (`grpc-timeout`).
    pub fn deadline(&self, headers: &HeaderMap) -> Duration {
        headers
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(self.timeout(), |asked| asked.min(self.timeout()))
    }

    /// The rate-limit key: the user, else the client IP (an IPv6 client by its /64).
    /// Credential calls always go by IP.
    pub fn limit_key(
        &self,
        class: LimitClass,
        principal: Option<&Principal>,
        client: Option<ClientAddr>,
    ) -> String {
        let ip = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        match (class, principal.and_then(Principal::user_id)) {
            (LimitClass::Standard, Some(id)) => format!("user:{id}"),
            _ => ratelimit::client::ip_key(ip),
        }
    }

    /// The client of a request from socket peer `peer`: `X-Forwarded-For` counts only when
    /// `peer` is one of `gateway.trusted_proxies`.
    pub fn client_addr(&self, peer: std::net::SocketAddr, headers: &HeaderMap) -> ClientAddr {
        ClientAddr(self.limiter.proxies.client(peer, headers))
    }

    /// One of the `max_concurrency` slots for a request, and one of its client address's
    /// `max_concurrent_per_ip`, held until it is answered.
    ///
    /// # Errors
    /// UNAVAILABLE with `Retry-After` when the edge has no slot free: a full edge sheds at
    /// once rather than queue. RESOURCE_EXHAUSTED (429) with RetryInfo and `Retry-After` when
    /// the client's address has `max_concurrent_per_ip` requests in flight already.
    pub fn admit(&self, client: Option<ClientAddr>) -> Result<Admission, EdgeError> {
        // The edge-wide slot first: a key is then counted only while its request holds one,
        // which bounds the per-address map by `max_concurrency`.
        let permit = self.in_flight.clone().try_acquire_owned().map_err(|_| {
            tracing::warn!("concurrency limit reached; shedding");
            EdgeError::new(Code::Unavailable, "the edge is overloaded; retry shortly")
                .with_header(header::RETRY_AFTER, "1")
        })?;
        if self.per_ip.limit() == 0 {
            return Ok(Admission {
                _slot: None,
                _permit: permit,
            });
        }
        let ip = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let Some(slot) = self.per_ip.try_acquire(ratelimit::client::ip_key(ip)) else {
            tracing::debug!(client = %ip, "per-address concurrency limit reached");
            return Err(too_many_in_flight(self.per_ip.limit()));
        };
        Ok(Admission {
            _slot: Some(slot),
            _permit: permit,
        })
    }

    /// Marks the edge as draining: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// A request's slots, edge-wide and of its client's address; both freed on drop.
#[derive(Debug)]
pub struct Admission {
    _slot: Option<Slot>,
    _permit: OwnedSemaphorePermit,
}

/// The refusal of a request whose address has `limit` requests in flight already.
fn too_many_in_flight(limit: usize) -> EdgeError {
    let status = Status::with_error_details(
        Code::ResourceExhausted,
        format!(
            "too many requests in flight from your address (at most {limit} at once); \
             retry once one of them is answered"
        ),
        ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
    );
    EdgeError::from(status).with_header(header::RETRY_AFTER, "1")
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (last, _) = value.char_indices().last()?;
    let (digits, unit) = value.split_at(last);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Health, and reflection (v1 and v1alpha) advertising only the exposed services.
fn local_grpc(routes: &RouteTable) -> Result<(HealthReporter, upstream::Service), StartError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let mut v1 = tonic_reflection::server::Builder::configure();
    let mut v1alpha = tonic_reflection::server::Builder::configure();
    for builder in [&mut v1, &mut v1alpha] {
        let mut b = std::mem::replace(builder, tonic_reflection::server::Builder::configure())
            .register_encoded_file_descriptor_set(polyshop::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        for name in polyshop_platform::server::LOCAL_SERVICES {
            b = b.with_service_name(name);
        }
        for name in routes.services() {
            b = b.with_service_name(name);
        }
        *builder = b;
    }
    let v1 = v1
        .build_v1()
        .map_err(|e| StartError::Serve(ServeError::Reflection(e)))?;
    let v1alpha = v1alpha
        .build_v1alpha()
        .map_err(|e| StartError::Serve(ServeError::Reflection(e)))?;
    let routes = tonic::service::Routes::new(health)
        .add_service(v1)
        .add_service(v1alpha)
        .prepare();
    let service =
        BoxCloneSyncService::new(ServiceExt::<http::Request<tonic::body::Body>>::map_err(
            routes,
            |e: std::convert::Infallible| -> UpstreamError { match e {} },
        ));
    Ok((reporter, service))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_memo_computes_once_per_ttl_for_concurrent_and_repeated_callers() {
        let memo = Memo::new(Duration::from_millis(200));
        let computed = std::sync::atomic::AtomicU32::new(0);
        let compute = || async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            computed.fetch_add(1, Ordering::SeqCst) + 1
        };
        let answers = futures::future::join_all((0..10).map(|_| memo.get(compute()))).await;
        assert_eq!(
            answers,
            vec![1; 10],
            "ten concurrent callers share one answer"
        );
        assert_eq!(memo.get(compute()).await, 1, "still fresh");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(memo.get(compute()).await, 2, "stale: computed again");
        // A value may say how long it keeps: this one only 10 ms.
        let short = |_: &u32| Duration::from_millis(10);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(memo.get_for(compute(), short).await, 3);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(memo.get(compute()).await, 4, "its own ttl, not the memo's");
    }

    #[test]
    fn grpc_timeouts_parse_every_unit() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("1x"), None);
    }
}
