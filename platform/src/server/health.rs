//! The health model every Polyshop process follows, in three answers:
//! - **liveness**: the process answers. No dependency is asked: a database or broker outage
//!   must not make Kubernetes restart every replica. Only a hung process fails it.
//! - **readiness**: the process can serve its calls now: its *critical* dependencies answer
//!   (the database always; NATS only where the service declares it critical, see
//!   [`Health::nats`]) and it is not draining.
//! - **full check**: every dependency, critical or not, with its latency and a detail: the
//!   database, NATS, each upstream context it calls, the free space of the data dir and the
//!   process's resident memory. For operators; it never decides a probe.
//!
//! Served on the process's HTTP side (for a service, its gRPC port beside `/metrics`) as
//! `GET /livez`, `GET /readyz` and `GET /health` (JSON), and as gRPC health names:
//! [`LIVENESS`], [`READINESS`], and `""` plus each served gRPC service name meaning readiness.

use std::{
    future::Future,
    path::PathBuf,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Json, http::StatusCode, response::IntoResponse, routing::get};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// The gRPC health name answering liveness.
pub const LIVENESS: &str = "liveness";
/// The gRPC health name answering readiness (as do `""` and each served service name).
pub const READINESS: &str = "readiness";

/// The contexts that need NATS to serve, so for which NATS is critical for readiness:
/// - `notification`: everything it answers comes from events (its notifications, its
///   recipient directory) and the list of revoked users it checks tokens against is held in
///   memory from the user stream, so without the broker its answers go silently stale and a
///   fresh instance would accept a suspended user's token. No saga calls it, so taking it out
///   of rotation costs the order path nothing.
///
/// Every other context (user, catalog, inventory, payment, order) and the edge keep serving
/// without NATS by design: events go to the transactional outbox and are relayed when the
/// broker is back; discovery keeps the instances it knows; order's user replica is in its
/// database; the revocation list of catalog, inventory and payment keeps what it has seen.
/// Failing their readiness would turn a broker outage into an outage of the shop. For them
/// NATS is in the full check only (status `degraded`).
pub const NATS_CRITICAL: &[&str] = &["notification"];

/// Whether `context` needs NATS to serve: see [`NATS_CRITICAL`].
pub fn nats_critical(context: &str) -> bool {
    NATS_CRITICAL.contains(&context)
}

/// How long one dependency may take to answer a check.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Below this share of free space the data dir's disk is reported not ok.
const DISK_MIN_FREE_RATIO: f64 = 0.05;
/// Below this many free bytes the data dir's disk is reported not ok.
const DISK_MIN_FREE_BYTES: u64 = 256 * 1024 * 1024;

type ProbeFuture = Pin<Box<dyn Future<Output = Result<Detail, String>> + Send>>;
type ProbeFn = Arc<dyn Fn() -> ProbeFuture + Send + Sync>;

/// What a dependency reported when it answered: a human-readable detail and, for disk and
/// memory, the figures behind it.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    text: String,
    figures: serde_json::Map<String, serde_json::Value>,
    ok: Option<bool>,
}

impl Detail {
    fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }
}

/// One dependency and how to ask it.
#[derive(Clone)]
struct Dependency {
    name: String,
    kind: &'static str,
    critical: bool,
    probe: ProbeFn,
}

/// A process's dependencies and its drain state. Cheap to clone (shared).
#[derive(Clone)]
pub struct Health {
    service: String,
    dependencies: Vec<Dependency>,
    draining: Arc<AtomicBool>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("service", &self.service)
            .field(
                "dependencies",
                &self
                    .dependencies
                    .iter()
                    .map(|d| (&d.name, d.critical))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// One dependency's answer in the full check.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// `database`, `nats`, `upstream:<context>`, `disk`, `memory`.
    pub name: String,
    /// `database`, `nats`, `upstream`, `disk`, `memory`.
    pub kind: &'static str,
    /// Whether readiness depends on it.
    pub critical: bool,
    /// Whether it answered well.
    pub ok: bool,
    /// How long the check took, in milliseconds.
    pub latency_ms: f64,
    /// What it said, or why it failed.
    pub detail: String,
    /// Figures behind the detail (disk and memory).
    #[serde(flatten)]
    pub figures: serde_json::Map<String, serde_json::Value>,
}

/// The full check: `GET /health`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The process, e.g. `order`.
    pub service: String,
    /// `ready`, `degraded` (ready, but a non-critical dependency fails), `not ready` or
    /// `draining`.
    pub status: &'static str,
    /// Always true when it answers at all.
    pub live: bool,
    /// Whether readiness holds.
    pub ready: bool,
    /// Every dependency.
    pub checks: Vec<CheckResult>,
}

/// Readiness: `GET /readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// `ready`, `not ready` or `draining`.
    pub status: &'static str,
    /// The critical dependencies that failed, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<CheckResult>,
}

impl Readiness {
    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

impl Health {
    /// A process named `service` with no dependency but disk space of `data_dir` and memory
    /// (both only in the full check).
    pub fn new(service: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        let data_dir: PathBuf = data_dir.into();
        let mut health = Self {
            service: service.into(),
            dependencies: Vec::new(),
            draining: Arc::new(AtomicBool::new(false)),
        };
        health.add("disk", "disk", false, move || {
            let dir = data_dir.clone();
            async move { disk(&dir) }
        });
        health.add("memory", "memory", false, || async { memory() });
        health
    }

    fn add<F, Fut>(&mut self, name: &str, kind: &'static str, critical: bool, probe: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Detail, String>> + Send + 'static,
    {
        // Dependencies first, disk and memory last.
        let at = self
            .dependencies
            .iter()
            .position(|d| matches!(d.kind, "disk" | "memory"))
            .unwrap_or(self.dependencies.len());
        self.dependencies.insert(
            at,
            Dependency {
                name: name.to_owned(),
                kind,
                critical,
                probe: Arc::new(move || Box::pin(probe())),
            },
        );
    }

    /// With its database, critical: no service answers without it.
    #[must_use]
    pub fn database(mut self, db: DatabaseConnection) -> Self {
        self.add("database", "database", true, move || {
            let db = db.clone();
            async move {
                db.ping().await.map_err(|e| e.to_string())?;
                Ok(Detail::text(format!(
                    "{:?} answers",
                    db.get_database_backend()
                )))
            }
        });
        self
    }

    /// With its NATS connection; `critical` where the service cannot serve correctly
    /// without the broker ([`nats_critical`]).
    #[must_use]
    pub fn nats(mut self, client: async_nats::Client, critical: bool) -> Self {
        self.add("nats", "nats", critical, move || {
            let client = client.clone();
            async move {
                let state = client.connection_state();
                if state != async_nats::connection::State::Connected {
                    return Err(format!("not connected ({state})"));
                }
                // A round trip to the server: PING/PONG.
                client.flush().await.map_err(|e| e.to_string())?;
                let info = client.server_info();
                Ok(Detail::text(format!(
                    "connected to {} ({}:{}, version {})",
                    info.server_name, info.host, info.port, info.version
                )))
            }
        });
        self
    }

    /// With an upstream context it calls, `channel` being any gRPC channel to it (a
    /// `Balanced` pool or a plain channel): asked for its readiness (health name `""`, which
    /// every version answers). Never critical: a caller stays ready while an upstream is away
    /// and answers the calls that need it with UNAVAILABLE, so one context's outage does not
    /// cascade into its callers' endpoints.
    #[must_use]
    pub fn upstream<C>(mut self, context: &str, channel: C) -> Self
    where
        C: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + Sync + 'static,
        C::Future: Send,
        C::Error: Into<tonic::codegen::StdError>,
        C::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
        <C::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
    {
        self.add(
            &format!("upstream:{context}"),
            "upstream",
            false,
            move || {
                let mut client = HealthClient::new(channel.clone());
                async move {
                    let answer = client
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                        .into_inner();
                    let status = answer.status();
                    let detail = Detail::text(status.as_str_name());
                    if status == tonic_health::pb::health_check_response::ServingStatus::Serving {
                        Ok(detail)
                    } else {
                        Err(status.as_str_name().to_owned())
                    }
                }
            },
        );
        self
    }

    /// With an upstream context asked by `probe` (a detail, or why it does not serve), for a
    /// process that reaches its upstreams its own way (the edge). Never critical.
    #[must_use]
    pub fn upstream_probe<F, Fut>(mut self, context: &str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        let probe = Arc::new(probe);
        self.add(
            &format!("upstream:{context}"),
            "upstream",
            false,
            move || {
                let probe = probe.clone();
                async move { probe().await.map(Detail::text) }
            },
        );
        self
    }

    /// With any other dependency, `probe` answering a detail or why it fails.
    #[must_use]
    pub fn check<F, Fut>(mut self, name: &str, critical: bool, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        let probe = Arc::new(probe);
        self.add(name, "other", critical, move || {
            let probe = probe.clone();
            async move { probe().await.map(Detail::text) }
        });
        self
    }

    /// Whether it declared `name` (e.g. `nats`) critical.
    pub fn is_critical(&self, name: &str) -> bool {
        self.dependencies
            .iter()
            .any(|d| d.name == name && d.critical)
    }

    /// The process's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// From now on readiness fails with `draining`; liveness holds.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether it is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Liveness: the process answers. Always true when asked.
    pub fn liveness(&self) -> bool {
        true
    }

    /// Readiness: asks the critical dependencies (at once, each within [`CHECK_TIMEOUT`]).
    pub async fn readiness(&self) -> Readiness {
        if self.is_draining() {
            return Readiness {
                status: "draining",
                failing: Vec::new(),
            };
        }
        let failing: Vec<CheckResult> = run(self.dependencies.iter().filter(|d| d.critical))
            .await
            .into_iter()
            .filter(|c| !c.ok)
            .collect();
        Readiness {
            status: if failing.is_empty() {
                "ready"
            } else {
                "not ready"
            },
            failing,
        }
    }

    /// The full check: every dependency (at once, each within [`CHECK_TIMEOUT`]).
    pub async fn report(&self) -> Report {
        let checks = run(self.dependencies.iter()).await;
        let ready = !self.is_draining() && checks.iter().all(|c| c.ok || !c.critical);
        let status = if self.is_draining() {
            "draining"
        } else if !ready {
            "not ready"
        } else if checks.iter().all(|c| c.ok) {
            "ready"
        } else {
            "degraded"
        };
        Report {
            service: self.service.clone(),
            status,
            live: true,
            ready,
            checks,
        }
    }

    /// `GET /livez`, `GET /readyz` and `GET /health` over this health.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let ready = self.clone();
        let full = self.clone();
        axum::Router::new()
            .route("/livez", get(|| async { livez() }))
            .route(
                "/readyz",
                get(move || {
                    let health = ready.clone();
                    async move { readyz(&health).await }
                }),
            )
            .route(
                "/health",
                get(move || {
                    let health = full.clone();
                    async move { health_json(&health).await }
                }),
            )
    }
}

/// `GET /livez`: 200 `{"status":"ok"}` whenever the process answers.
pub fn livez() -> axum::response::Response {
    (StatusCode::OK, Json(serde_json::json!({ "status": "ok" }))).into_response()
}

/// `GET /readyz`: 200 when ready, else 503, with [`Readiness`] as JSON.
pub async fn readyz(health: &Health) -> axum::response::Response {
    let readiness = health.readiness().await;
    let code = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(readiness)).into_response()
}

/// `GET /health`: 200 while ready (also when degraded), else 503, with [`Report`] as JSON.
pub async fn health_json(health: &Health) -> axum::response::Response {
    let report = health.report().await;
    let code = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report)).into_response()
}

async fn run<'a>(dependencies: impl Iterator<Item = &'a Dependency>) -> Vec<CheckResult> {
    futures::future::join_all(dependencies.map(|d| async move {
        let started = Instant::now();
        let answer = tokio::time::timeout(CHECK_TIMEOUT, (d.probe)()).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (ok, detail, figures) = match answer {
            Ok(Ok(detail)) => (detail.ok.unwrap_or(true), detail.text, detail.figures),
            Ok(Err(why)) => (false, why, serde_json::Map::new()),
            Err(_) => (
                false,
                format!("no answer within {} ms", CHECK_TIMEOUT.as_millis()),
                serde_json::Map::new(),
            ),
        };
        CheckResult {
            name: d.name.clone(),
            kind: d.kind,
            critical: d.critical,
            ok,
            latency_ms: (latency_ms * 1000.0).round() / 1000.0,
            detail,
            figures,
        }
    }))
    .await
}

/// Free space of the file system holding `dir` (or its nearest existing ancestor).
fn disk(dir: &std::path::Path) -> Result<Detail, String> {
    let mut at = dir;
    while !at.exists() {
        at = at
            .parent()
            .ok_or_else(|| format!("{} does not exist", dir.display()))?;
    }
    let stat = nix::sys::statvfs::statvfs(at).map_err(|e| format!("{}: {e}", at.display()))?;
    let block = stat.fragment_size();
    let total = stat.blocks().saturating_mul(block);
    let free = stat.blocks_available().saturating_mul(block);
    #[allow(clippy::cast_precision_loss)]
    let ratio = if total == 0 {
        1.0
    } else {
        free as f64 / total as f64
    };
    let ok = ratio >= DISK_MIN_FREE_RATIO && free >= DISK_MIN_FREE_BYTES;
    let mut figures = serde_json::Map::new();
    figures.insert("path".into(), dir.display().to_string().into());
    figures.insert("freeBytes".into(), free.into());
    figures.insert("totalBytes".into(), total.into());
    Ok(Detail {
        text: format!(
            "{} MiB free of {} MiB ({:.1}%) at {}",
            free / (1024 * 1024),
            total / (1024 * 1024),
            ratio * 100.0,
            dir.display()
        ),
        figures,
        ok: Some(ok),
    })
}

/// Resident memory of this process, from `/proc/self/status`.
fn memory() -> Result<Detail, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status: {e}"))?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    let rss = kib("VmRSS:").ok_or("no VmRSS in /proc/self/status")? * 1024;
    let mut figures = serde_json::Map::new();
    figures.insert("rssBytes".into(), rss.into());
    if let Some(peak) = kib("VmHWM:") {
        figures.insert("rssPeakBytes".into(), (peak * 1024).into());
    }
    Ok(Detail {
        text: format!("{} MiB resident", rss / (1024 * 1024)),
        figures,
        ok: None,
    })
}
