//! Configuration: built-in defaults → `polyshop.toml` (or the file in `POLYSHOP_CONFIG`) →
//! `POLYSHOP_*` environment variables. Every key lives here, typed; services read their own
//! section. Tests build [`Settings`] directly and never touch the process environment.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
/// The secret type of the settings, re-exported so readers need no dependency of their own.
pub use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// Sections that environment keys are split into: `POLYSHOP_USER_DATABASE_URL` is
/// `user.database_url`.
const SECTIONS: [&str; 13] = [
    "discovery",
    "flags",
    "events",
    "user",
    "catalog",
    "inventory",
    "order",
    "payment",
    "notification",
    "gateway",
    "auth",
    "nats",
    "tls",
];

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or variable could not be parsed into the typed config.
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// Values parsed but break a rule.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Everything a Polyshop process can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where SQLite files, keys and the NATS store live. Env: `POLYSHOP_DATA_DIR`.
    pub data_dir: PathBuf,
    /// `tracing` filter, e.g. `info,polyshop=debug`. Env: `POLYSHOP_LOG`.
    pub log: String,
    /// The environment this process belongs to (`dev`, `staging`, `prod`, …): the first part
    /// of its runtime configuration keys in NATS KV (`<environment>.<service>.<setting>`, see
    /// `runtime_config`). Env: `POLYSHOP_ENVIRONMENT`.
    pub environment: String,
    /// `json` (default) or `pretty`.
    pub log_format: LogFormat,
    /// OTLP/gRPC collector endpoint; traces are exported only when set.
    pub otlp_endpoint: Option<String>,
    /// How long in-flight calls may take to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Async runtime worker threads of this process; 0 means one per core. `polyshop up`
    /// gives each child a share of the cores instead, since it runs seven processes on one
    /// machine. Env: `POLYSHOP_WORKER_THREADS`.
    pub worker_threads: usize,
    /// Token settings shared by issuer and verifiers.
    pub auth: AuthSettings,
    /// NATS settings.
    pub nats: NatsSettings,
    /// Event consumer settings.
    pub events: EventSettings,
    /// Service registry and discovery.
    pub discovery: DiscoverySettings,
    /// Feature flags by name (see `flags::KNOWN`); runtime overrides come from NATS KV.
    pub flags: std::collections::BTreeMap<String, bool>,
    /// The user service.
    pub user: UserSettings,
    /// The catalog service.
    pub catalog: ServiceSettings,
    /// The inventory service.
    pub inventory: InventorySettings,
    /// The order service.
    pub order: OrderSettings,
    /// The payment service.
    pub payment: ServiceSettings,
    /// The notification service.
    pub notification: NotificationSettings,
    /// The edge gateway.
    pub gateway: GatewaySettings,
    /// TLS between services (mutual, with certificates from one CA).
    pub tls: TlsSettings,
}

/// TLS between services: with `ca_path`, `cert_path` and `key_path` set, every service's
/// gRPC port serves TLS only, and every call a process makes to a service (the edge's, a
/// service's to another, the JWKS fetch) goes over TLS, trusting only `ca_path` and
/// presenting `cert_path`. Unset: plaintext h2c, as on loopback. The edge's public listener
/// has its own certificate (`gateway.tls_cert_path`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate(s) of the CA that issues the services' certificates: servers accept
    /// client certificates from it, clients accept server certificates from it.
    pub ca_path: Option<PathBuf>,
    /// PEM certificate chain (leaf first) of this process, for both ends: its server
    /// certificate and the client certificate it presents. Its names (SANs) must include
    /// the host in the URLs other processes dial.
    pub cert_path: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_path`.
    pub key_path: Option<PathBuf>,
    /// Whether servers refuse a client without a certificate from `ca_path`; `false` still
    /// encrypts but lets any client in.
    pub require_client_cert: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            ca_path: None,
            cert_path: None,
            key_path: None,
            require_client_cert: true,
        }
    }
}

/// The edge gateway: where it listens and how it protects the services behind it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// Address the HTTP/1.1 + HTTP/2 listener binds (JSON, grpc-web and gRPC share it).
    pub listen: SocketAddr,
    /// Address of a separate admin listener serving `GET /metrics`; the public listener then
    /// answers 404 there. Unset: `/metrics` stays on the public listener.
    pub admin_listen: Option<SocketAddr>,
    /// Deadline of one upstream call, unless the request asks for less.
    pub request_timeout_ms: u64,
    /// Failed calls in a row (unreachable or UNAVAILABLE, on any instance) that open a
    /// context's circuit at the edge: its calls then fail at once with 503.
    pub breaker_failures: u32,
    /// How long a context's open circuit stays open before one probe call.
    pub breaker_cool_down_ms: u64,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Requests handled at once; more are shed with 503. A JSON request counts from when its
    /// body has arrived, so slow senders cannot hold the edge's capacity.
    pub max_concurrency: usize,
    /// Requests one client address (an IPv6 client by its /64; behind a trusted proxy, the
    /// client it names) may have in flight at once; more are refused with 429 /
    /// RESOURCE_EXHAUSTED. Counted like `max_concurrency`; 0 turns the cap off.
    pub max_concurrent_per_ip: usize,
    /// Time a JSON request's body has to arrive in full (408 after).
    pub body_timeout_ms: u64,
    /// Streams one HTTP/2 connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_streams_per_connection: u32,
    /// Token bucket per principal for ordinary methods: refill per second.
    pub rate_per_sec: u32,
    /// Token bucket per principal for ordinary methods: burst size.
    pub rate_burst: u32,
    /// Stricter bucket for Login and Register (per client IP): refill per second.
    pub auth_rate_per_sec: u32,
    /// Stricter bucket for Login and Register: burst size.
    pub auth_rate_burst: u32,
    /// Bucket per account named by Login and Register (on top of the per-IP one): refill per
    /// second.
    pub account_rate_per_sec: f64,
    /// Bucket per account named by Login and Register: burst size; 0 turns it off.
    pub account_rate_burst: u32,
    /// Keys (principals, addresses, accounts) the edge keeps buckets for; past it, full buckets
    /// and then the least recently used are dropped.
    pub rate_max_keys: usize,
    /// Proxies (CIDRs, or single addresses) whose `X-Forwarded-For` names the client; from any
    /// other peer the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// How often an edge tells the other edges (over NATS: in `nats` discovery mode, or with
    /// `nats.url` set) what it admitted, so a principal's rate holds over all edges; 0 limits
    /// each edge alone.
    pub rate_share_ms: u64,
    /// Origins allowed by CORS; `*` allows any.
    pub cors_allowed_origins: Vec<String>,
    /// Check each JSON, grpc-web and gRPC request against its contract's `buf.validate` rules
    /// before forwarding it, answering INVALID_ARGUMENT as the service would; off, the
    /// services still check (their own layer), one hop later.
    pub validate_requests: bool,
    /// Serve the storefront and console pages from this directory (e.g. `web/dist`), read on
    /// every request, instead of the copy built into the binary: for working on the pages.
    pub web_dir: Option<PathBuf>,
    /// PEM certificate chain (leaf first) for HTTPS on `listen`; set together with
    /// `tls_key_path`. Unset: the listener serves plaintext (h2c and HTTP/1.1).
    pub tls_cert_path: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert_path`.
    pub tls_key_path: Option<PathBuf>,
    /// GraphQL: deepest selection a query may nest (refused before any upstream call).
    pub graphql_max_depth: usize,
    /// GraphQL: most fields one selection set may ask for.
    pub graphql_max_breadth: usize,
    /// GraphQL: most upstream calls one query may make, counted from the query before it
    /// runs and again as it runs; each call also takes a token from the caller's bucket.
    pub graphql_max_cost: usize,
    /// GraphQL: whether the schema answers introspection (`__schema`, `__type`).
    pub graphql_introspection: bool,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: loopback(8080),
            admin_listen: None,
            request_timeout_ms: 10_000,
            breaker_failures: 20,
            breaker_cool_down_ms: 2000,
            max_body_bytes: 1024 * 1024,
            max_concurrency: 1024,
            max_concurrent_per_ip: 64,
            body_timeout_ms: 10_000,
            max_streams_per_connection: 100,
            rate_per_sec: 50,
            rate_burst: 100,
            auth_rate_per_sec: 1,
            auth_rate_burst: 10,
            account_rate_per_sec: 0.2,
            account_rate_burst: 5,
            rate_max_keys: 100_000,
            trusted_proxies: Vec::new(),
            rate_share_ms: 100,
            cors_allowed_origins: vec!["*".into()],
            tls_cert_path: None,
            tls_key_path: None,
            validate_requests: true,
            web_dir: None,
            graphql_max_depth: 10,
            graphql_max_breadth: 50,
            graphql_max_cost: 20,
            graphql_introspection: true,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// The longest `auth.token_ttl_secs` allowed: 15 minutes.
pub const MAX_ACCESS_TOKEN_TTL_SECS: u64 = 900;

/// Token settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `iss` of user access tokens.
    pub issuer: String,
    /// `aud` of user access tokens.
    pub audience: String,
    /// Lifetime of a user access token.
    pub token_ttl_secs: u64,
    /// Lifetime of a service-to-service token.
    pub service_token_ttl_secs: u64,
    /// PKCS#8 PEM Ed25519 key that signs user tokens; generated under the data dir if unset.
    pub signing_key_path: Option<PathBuf>,
    /// This service's own PKCS#8 PEM Ed25519 key for service tokens; unset:
    /// `<data_dir>/keys/services/polyshop-<context>.pem`, generated on first start.
    pub service_key_path: Option<PathBuf>,
    /// Directory of trusted service public keys (`<iss>.<kid>.json`); unset:
    /// `<data_dir>/keys/service-trust`. Re-read every 2 s: removing a file revokes a key.
    pub service_trust_dir: Option<PathBuf>,
    /// How long a rotated-out service key keeps verifying (`polyshop admin rotate-service-key`):
    /// at least a service token's lifetime, so tokens in flight stay good.
    pub service_key_grace_secs: u64,
}

/// NATS settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// Server URL. When unset, `polyshop up` starts a nats-server child on `embedded_port`.
    pub url: Option<String>,
    /// Port of the embedded nats-server.
    pub embedded_port: u16,
    /// Copies JetStream keeps of every stream and KV bucket: 1 on a single server, 3 on a
    /// three-node cluster (at most the number of servers). Env: `POLYSHOP_NATS_REPLICAS`.
    pub replicas: usize,
    /// User this process authenticates to NATS as (with `password`). Unset: the identity
    /// `polyshop up` generated under the data dir (`nats-users/`), if any, else none.
    /// Env: `POLYSHOP_NATS_USER`.
    pub user: Option<String>,
    /// Password of `user`. Serialized as [`REDACTED`]. Env: `POLYSHOP_NATS_PASSWORD`.
    #[serde(serialize_with = "redacted")]
    pub password: Option<SecretString>,
    /// A NATS credentials file (`.creds`: a user JWT and its nkey seed, for a server in
    /// operator/JWT mode), instead of `user` and `password`.
    pub credentials_file: Option<PathBuf>,
}

/// How services find each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryMode {
    /// The configured `<service>.url` of each service.
    Static,
    /// A registry in NATS JetStream KV: services register with a TTL and heartbeat, callers
    /// balance over the live instances (and fall back to the configured URL when none is).
    Nats,
    /// Re-resolve the host of each service's configured URL (a Kubernetes headless Service):
    /// every A/AAAA record is an instance on the URL's port.
    Dns,
}

/// Service registry and discovery: where callers find each context's instances, how they
/// pick one, and what this process registers about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoverySettings {
    /// `static`, `nats` or `dns`.
    pub mode: DiscoveryMode,
    /// An instance that stops heartbeating is dropped after this long.
    pub ttl_secs: u64,
    /// How often a registered instance refreshes its entry.
    pub heartbeat_ms: u64,
    /// How often `dns` mode re-resolves a context's host.
    pub poll_ms: u64,
    /// `dns` mode: the nameserver to ask (`ip:port`); the system's resolv.conf if unset.
    pub dns_server: Option<String>,
    /// `static` mode: every instance's URL by context, over the context's one `url`.
    pub endpoints: BTreeMap<String, Vec<String>>,
    /// How callers pick an instance: `least_outstanding`, `round_robin` or `random`.
    pub policy: crate::discovery::Policy,
    /// The policy for calls to particular services, over `policy` (`{catalog = "random"}`).
    pub policies: BTreeMap<String, crate::discovery::Policy>,
    /// Failed calls in a row (UNAVAILABLE, or lost after sending) that eject an instance
    /// from a caller's pool; a refused connection ejects at once.
    pub outlier_failures: u32,
    /// The first ejection's length; each further one in a row doubles it.
    pub outlier_base_ejection_ms: u64,
    /// The longest ejection.
    pub outlier_max_ejection_ms: u64,
    /// Callers' weight for the instances of a version, over the instances' own (canaries).
    pub version_weights: BTreeMap<String, u32>,
    /// This process's version in the registry.
    pub version: String,
    /// This process's zone in the registry (free text, e.g. a Kubernetes topology zone).
    pub zone: String,
    /// This process's tags in the registry.
    pub tags: Vec<String>,
    /// This process's share of its context's traffic relative to the other instances'.
    pub weight: u32,
}

impl DiscoverySettings {
    /// When callers eject an instance.
    pub fn outlier(&self) -> crate::discovery::OutlierSettings {
        crate::discovery::OutlierSettings {
            consecutive_failures: self.outlier_failures,
            base_ejection_ms: self.outlier_base_ejection_ms,
            max_ejection_ms: self.outlier_max_ejection_ms,
        }
    }

    /// The `dns` mode nameserver, if one is set.
    ///
    /// # Errors
    /// When `dns_server` is not `ip:port`.
    pub fn dns_server(&self) -> Result<Option<SocketAddr>, ConfigError> {
        self.dns_server
            .as_deref()
            .map(|s| {
                s.parse().map_err(|_| {
                    ConfigError::Invalid(format!("discovery.dns_server {s:?} is not ip:port"))
                })
            })
            .transpose()
    }
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        Self {
            mode: DiscoveryMode::Static,
            ttl_secs: 15,
            heartbeat_ms: 5000,
            poll_ms: 2000,
            dns_server: None,
            endpoints: BTreeMap::new(),
            policy: crate::discovery::Policy::default(),
            policies: BTreeMap::new(),
            outlier_failures: 5,
            outlier_base_ejection_ms: 1000,
            outlier_max_ejection_ms: 30_000,
            version_weights: BTreeMap::new(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            zone: String::new(),
            tags: Vec::new(),
            weight: 100,
        }
    }
}

/// How event consumers acknowledge and give up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// Seconds a delivery may stay unacknowledged before it is redelivered.
    pub ack_wait_secs: u64,
    /// Deliveries before a message goes to the dead-letter stream.
    pub max_deliver: i64,
    /// Days a context stream keeps an event (its `max_age`); a consumer that is behind by more
    /// loses the older events, and the inbox forgets an event id after this plus
    /// `dlq_max_age_days`.
    pub stream_max_age_days: u64,
    /// Days the dead-letter stream keeps a dead letter, i.e. how long it can be redriven.
    pub dlq_max_age_days: u64,
    /// Bytes each stream (the DLQ too) may hold; beyond, its oldest events are discarded.
    pub stream_max_bytes: u64,
    /// Days an idempotency key is remembered: a request replayed later is a new request.
    pub idempotency_window_days: u64,
    /// How often each service deletes inbox rows and idempotency keys past their window.
    pub prune_interval_secs: u64,
    /// How often each process samples its outbox, consumer and dead-letter gauges.
    pub gauge_interval_ms: u64,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            ack_wait_secs: 30,
            max_deliver: 5,
            stream_max_age_days: 7,
            dlq_max_age_days: 30,
            stream_max_bytes: 1 << 30,
            idempotency_window_days: 30,
            prune_interval_secs: 3600,
            gauge_interval_ms: 5000,
        }
    }
}

impl EventSettings {
    /// How long a context stream keeps an event.
    pub fn stream_max_age(&self) -> std::time::Duration {
        days(self.stream_max_age_days)
    }

    /// How long the dead-letter stream keeps a dead letter.
    pub fn dlq_max_age(&self) -> std::time::Duration {
        days(self.dlq_max_age_days)
    }

    /// How long a consumer must remember an event id: an event can be delivered again while
    /// its stream keeps it, and once more after a redrive from the DLQ, which lands in the
    /// stream again for another `stream_max_age`.
    pub fn inbox_window(&self) -> std::time::Duration {
        self.stream_max_age() + self.dlq_max_age()
    }

    /// How long an idempotency key is remembered.
    pub fn idempotency_window(&self) -> std::time::Duration {
        days(self.idempotency_window_days)
    }

    /// How often the pruner runs.
    pub fn prune_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.prune_interval_secs)
    }

    /// How often the operator gauges are sampled.
    pub fn gauge_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.gauge_interval_ms)
    }

    /// A consumer spec with these settings.
    pub fn consumer(
        &self,
        name: &str,
        stream: &str,
        subjects: &[&str],
    ) -> crate::events::consumer::ConsumerSpec {
        crate::events::consumer::ConsumerSpec {
            name: name.to_owned(),
            stream: stream.to_owned(),
            filter_subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            ack_wait: std::time::Duration::from_secs(self.ack_wait_secs),
            max_deliver: self.max_deliver,
        }
    }
}

fn days(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n.saturating_mul(86_400))
}

/// Where a service listens and what it stores into.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceSettings {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// URL other processes use to reach it; `http://<listen>` (loopback for 0.0.0.0) if unset.
    pub url: Option<String>,
    /// PostgreSQL URL of this service's own database; SQLite under the data dir if unset. A
    /// secret, since it may carry a password: serialized with the password redacted.
    #[serde(serialize_with = "redacted_url")]
    pub database_url: Option<SecretString>,
}

/// The user service: a [`ServiceSettings`] plus the bootstrap admin account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserSettings {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// URL other processes use to reach it.
    pub url: Option<String>,
    /// PostgreSQL URL; SQLite under the data dir if unset (a secret, as in [`ServiceSettings`]).
    #[serde(serialize_with = "redacted_url")]
    pub database_url: Option<SecretString>,
    /// Username of the admin account created at start when `admin_password` is set.
    pub admin_username: String,
    /// Email of that admin account.
    pub admin_email: String,
    /// Password of that admin account; no admin is created when unset. Serialized as
    /// [`REDACTED`].
    #[serde(serialize_with = "redacted")]
    pub admin_password: Option<SecretString>,
    /// argon2id hashes (19 MiB each) that may run at once; 0 means two per core.
    pub max_concurrent_hashes: usize,
    /// Logins and registrations that may wait for a hashing slot; beyond, RESOURCE_EXHAUSTED.
    pub max_waiting_hashes: usize,
    /// How long one may wait for a hashing slot before RESOURCE_EXHAUSTED.
    pub hash_wait_ms: u64,
    /// Lifetime of a refresh token (each refresh issues a new one with a fresh lifetime).
    pub refresh_token_ttl_secs: u64,
}

impl UserSettings {
    /// The hashing slots: `max_concurrent_hashes`, or two per core when it is 0.
    pub fn hash_permits(&self) -> usize {
        match self.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) * 2,
            n => n,
        }
    }
}

impl Default for UserSettings {
    fn default() -> Self {
        Self {
            listen: loopback(50051),
            url: None,
            database_url: None,
            admin_username: "admin".into(),
            admin_email: "admin@polyshop.local".into(),
            admin_password: None,
            max_concurrent_hashes: 0,
            max_waiting_hashes: 64,
            hash_wait_ms: 2000,
            refresh_token_ttl_secs: 30 * 86_400,
        }
    }
}

/// The notification service: a [`ServiceSettings`] plus how mail leaves the system.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationSettings {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// URL other processes use to reach it.
    pub url: Option<String>,
    /// PostgreSQL URL; SQLite under the data dir if unset (a secret, as in [`ServiceSettings`]).
    #[serde(serialize_with = "redacted_url")]
    pub database_url: Option<SecretString>,
    /// SMTP relay `host:port`; when unset, mail goes to the mailbox under the data dir.
    pub smtp_addr: Option<String>,
    /// Envelope and header sender of outgoing mail.
    pub mail_from: String,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            listen: loopback(50056),
            url: None,
            database_url: None,
            smtp_addr: None,
            mail_from: "Polyshop <no-reply@polyshop.local>".into(),
        }
    }
}

/// The order service: a [`ServiceSettings`] plus how it calls the saga participants.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderSettings {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// URL other processes use to reach it.
    pub url: Option<String>,
    /// PostgreSQL URL; SQLite under the data dir if unset (a secret, as in [`ServiceSettings`]).
    #[serde(serialize_with = "redacted_url")]
    pub database_url: Option<SecretString>,
    /// Deadline of each call to a participant.
    pub call_timeout_ms: u64,
    /// Attempts per idempotent call (first one included).
    pub call_attempts: u32,
    /// Consecutive failures that open a participant's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker fails fast before letting a probe through.
    pub breaker_cool_down_ms: u64,
    /// Calls in flight to one participant at most (its bulkhead).
    pub bulkhead_max_concurrent: usize,
    /// Calls waiting for a slot to one participant at most; beyond, RESOURCE_EXHAUSTED.
    pub bulkhead_max_waiting: usize,
    /// A snapshot of the aggregate is stored every this many events.
    pub snapshot_every: i64,
    /// How often unfinished sagas are resumed.
    pub resume_interval_ms: u64,
    /// Backoff after a saga step's first transient failure (doubles each time).
    pub saga_retry_base_ms: u64,
    /// Longest backoff between a saga step's retries.
    pub saga_retry_max_ms: u64,
    /// How long a saga step may fail in a row before a forward step rejects the order
    /// (SERVICE_UNAVAILABLE) or a refund/restock is flagged for reconciliation.
    pub saga_horizon_secs: u64,
    /// How long CreateOrder and CancelOrder wait for the saga to settle before answering with
    /// the stored order as it is (PENDING / CANCELLING); the saga goes on in the background.
    pub settle_wait_ms: u64,
    /// Crash-test failpoints, `name=exit|refuse|sleep(ms)` (added to `POLYSHOP_FAILPOINT`).
    pub failpoints: Vec<String>,
    /// How long an instance's claim on a saga lasts without renewal; a killed or paused
    /// instance's sagas are taken over this long after its last renewal.
    pub saga_lease_ms: u64,
    /// How often a driving instance renews its claim (well below `saga_lease_ms`).
    pub saga_lease_renew_ms: u64,
}

impl Default for OrderSettings {
    fn default() -> Self {
        Self {
            listen: loopback(50054),
            url: None,
            database_url: None,
            call_timeout_ms: 3000,
            call_attempts: 3,
            breaker_failures: 5,
            breaker_cool_down_ms: 5000,
            bulkhead_max_concurrent: 64,
            bulkhead_max_waiting: 256,
            snapshot_every: 5,
            resume_interval_ms: 2000,
            saga_retry_base_ms: 500,
            saga_retry_max_ms: 30_000,
            saga_horizon_secs: 15 * 60,
            settle_wait_ms: 2000,
            failpoints: Vec::new(),
            saga_lease_ms: 10_000,
            saga_lease_renew_ms: 3000,
        }
    }
}

/// The inventory service: a [`ServiceSettings`] plus reservation timing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InventorySettings {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// URL other processes use to reach it.
    pub url: Option<String>,
    /// PostgreSQL URL; SQLite under the data dir if unset (a secret, as in [`ServiceSettings`]).
    #[serde(serialize_with = "redacted_url")]
    pub database_url: Option<SecretString>,
    /// How long a reservation holds stock before the sweeper releases it.
    pub reservation_hold_secs: u64,
    /// How often the sweeper looks for expired reservations.
    pub sweep_interval_secs: u64,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

impl ServiceSettings {
    fn on_port(port: u16) -> Self {
        Self {
            listen: loopback(port),
            url: None,
            database_url: None,
        }
    }

    /// The URL clients dial.
    pub fn url(&self) -> String {
        self.url.clone().unwrap_or_else(|| url_of(self.listen))
    }
}

/// `service()` and `url()` for the sections that extend [`ServiceSettings`] with their own keys
/// (kept as plain fields rather than `#[serde(flatten)]`, which `deny_unknown_fields` forbids).
macro_rules! service_section {
    ($($section:ty),+) => {$(
        impl $section {
            /// The generic part, for the server bootstrap.
            pub fn service(&self) -> ServiceSettings {
                ServiceSettings {
                    listen: self.listen,
                    url: self.url.clone(),
                    database_url: self.database_url.clone(),
                }
            }

            /// The URL clients dial.
            pub fn url(&self) -> String {
                self.service().url()
            }
        }
    )+};
}

service_section!(
    UserSettings,
    InventorySettings,
    OrderSettings,
    NotificationSettings
);

/// What the settings serialize in place of a secret, and of the password in a URL.
pub const REDACTED: &str = "<redacted>";

/// A set secret serializes as [`REDACTED`], so nothing that prints the settings (`polyshop
/// admin config`) can show it; an unset one as unset.
fn redacted<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    secret.as_ref().map(|_| REDACTED).serialize(s)
}

/// A URL secret serializes with its password redacted ([`redact_url`]): the scheme, user, host
/// and database stay visible for an operator to check.
fn redacted_url<S: Serializer>(url: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    url.as_ref()
        .map(|u| redact_url(u.expose_secret()))
        .serialize(s)
}

/// `url` with the password of its user info and of any `password=` query parameter replaced
/// by [`REDACTED`]; anything else as it is. A stray `@` or `:` may make it redact more than
/// the password, never less.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    // The last `@` before the query ends the user info, even when a password holds an `@`.
    let (authority, tail) = match rest[..query_at].rfind('@') {
        Some(at) => {
            let host_end = rest[at..]
                .find(['/', '?', '#'])
                .map_or(rest.len(), |i| at + i);
            let (userinfo, host) = (&rest[..at], &rest[at + 1..host_end]);
            let userinfo = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:{REDACTED}"),
                None => userinfo.to_owned(),
            };
            (format!("{userinfo}@{host}"), &rest[host_end..])
        }
        None => (String::new(), rest),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={REDACTED}"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The URL other processes dial for a listener on `addr` (loopback for an unspecified address).
pub fn url_of(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self::on_port(0)
    }
}

impl Default for InventorySettings {
    fn default() -> Self {
        Self {
            listen: loopback(50053),
            url: None,
            database_url: None,
            reservation_hold_secs: 900,
            sweep_interval_secs: 5,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "polyshop-user".into(),
            audience: "polyshop".into(),
            token_ttl_secs: 900,
            service_token_ttl_secs: 300,
            signing_key_path: None,
            service_key_path: None,
            service_trust_dir: None,
            service_key_grace_secs: 360,
        }
    }
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: None,
            embedded_port: 4250,
            replicas: 1,
            user: None,
            password: None,
            credentials_file: None,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            log: "info".into(),
            environment: "dev".into(),
            log_format: LogFormat::Json,
            otlp_endpoint: None,
            shutdown_grace_secs: 10,
            worker_threads: 0,
            auth: AuthSettings::default(),
            nats: NatsSettings::default(),
            events: EventSettings::default(),
            discovery: DiscoverySettings::default(),
            flags: std::collections::BTreeMap::new(),
            user: UserSettings::default(),
            catalog: ServiceSettings::on_port(50052),
            inventory: InventorySettings::default(),
            order: OrderSettings::default(),
            payment: ServiceSettings::on_port(50055),
            notification: NotificationSettings::default(),
            gateway: GatewaySettings::default(),
            tls: TlsSettings::default(),
        }
    }
}

impl Settings {
    /// Loads defaults, then `polyshop.toml` (or `$POLYSHOP_CONFIG`), then `POLYSHOP_*`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad key or rule.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os("POLYSHOP_CONFIG")
            .map_or_else(|| PathBuf::from("polyshop.toml"), PathBuf::from);
        // POLYSHOP_CONFIG, POLYSHOP_FAILPOINT and POLYSHOP_TEST_POSTGRES_URL are read elsewhere.
        Self::from_figment(Self::figment(&file, Env::prefixed("POLYSHOP_")))
    }

    /// The layered figment, with `env` as its last layer (tests pass a fake environment).
    pub fn figment(file: &Path, env: Env) -> Figment {
        Figment::from(Serialized::defaults(Self::default()))
            .merge(Toml::file(file))
            .merge(
                env.ignore(&["config", "failpoint", "test_postgres_url"])
                    .map(|key| {
                        let key = key.as_str().to_ascii_lowercase();
                        let key = SECTIONS
                            .iter()
                            .find_map(|s| {
                                key.strip_prefix(s)
                                    .and_then(|rest| rest.strip_prefix('_'))
                                    .map(|rest| format!("{s}.{rest}"))
                            })
                            .unwrap_or(key);
                        key.into()
                    }),
            )
    }

    /// Extracts and validates.
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad key or rule.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Self = figment.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: &str| Err(ConfigError::Invalid(msg.to_owned()));
        // Access tokens are bearer tokens that cannot be recalled once issued: they live at
        // most 15 minutes, and clients keep a session going with refresh tokens.
        if self.auth.token_ttl_secs == 0 || self.auth.token_ttl_secs > MAX_ACCESS_TOKEN_TTL_SECS {
            return bad(
                "auth.token_ttl_secs must be between 1 and 900: access tokens live at most 15 minutes (sessions last through refresh tokens, user.refresh_token_ttl_secs)",
            );
        }
        if self.auth.service_token_ttl_secs < 30 {
            return bad("auth.service_token_ttl_secs must be at least 30");
        }
        if self.auth.service_key_grace_secs < self.auth.service_token_ttl_secs {
            return bad(
                "auth.service_key_grace_secs must be at least auth.service_token_ttl_secs: a rotated-out key must outlive the tokens it signed",
            );
        }
        if self.inventory.reservation_hold_secs == 0 || self.inventory.sweep_interval_secs == 0 {
            return bad("inventory.reservation_hold_secs and sweep_interval_secs must be > 0");
        }
        if self.order.saga_lease_renew_ms == 0
            || self.order.saga_lease_renew_ms >= self.order.saga_lease_ms
        {
            return bad("order.saga_lease_renew_ms must be > 0 and shorter than saga_lease_ms");
        }
        if self.user.hash_wait_ms == 0 {
            return bad("user.hash_wait_ms must be > 0");
        }
        if !(60..=365 * 86_400).contains(&self.user.refresh_token_ttl_secs) {
            return bad("user.refresh_token_ttl_secs must be between 60 and 31536000 (a year)");
        }
        // Pairs (user with password, not with credentials_file) are checked when connecting.
        if self.nats.user.as_deref().is_some_and(str::is_empty) {
            return bad("nats.user must not be empty");
        }
        if self.events.max_deliver < 1 || self.events.ack_wait_secs == 0 {
            return bad("events.max_deliver and events.ack_wait_secs must be > 0");
        }
        let e = &self.events;
        // A day is also far above the streams' 15-minute duplicate window, which JetStream
        // requires to be shorter than max_age.
        if !(1..=36_500).contains(&e.stream_max_age_days)
            || !(1..=36_500).contains(&e.dlq_max_age_days)
        {
            return bad("events.stream_max_age_days and dlq_max_age_days must be 1 to 36500");
        }
        if e.stream_max_bytes < 1 << 20 || i64::try_from(e.stream_max_bytes).is_err() {
            return bad("events.stream_max_bytes must be at least 1 MiB (1048576)");
        }
        // A saga retries its calls, with the same keys, for up to its horizon: forgetting a
        // key sooner could charge twice.
        if e.idempotency_window_days == 0
            || e.idempotency_window_days.saturating_mul(86_400) <= self.order.saga_horizon_secs
        {
            return bad(
                "events.idempotency_window_days must be > 0 and longer than order.saga_horizon_secs",
            );
        }
        if e.gauge_interval_ms == 0 {
            return bad("events.gauge_interval_ms must be > 0");
        }
        if e.prune_interval_secs == 0 {
            return bad("events.prune_interval_secs must be > 0");
        }
        if let Some(name) = self.flags.keys().find(|n| crate::flags::spec(n).is_none()) {
            return Err(ConfigError::Invalid(format!(
                "unknown feature flag flags.{name}; known: {}",
                crate::flags::names()
            )));
        }
        // JetStream itself allows no more than 5 replicas.
        if !(1..=5).contains(&self.nats.replicas) {
            return bad("nats.replicas must be between 1 and 5");
        }
        let d = &self.discovery;
        if d.poll_ms == 0 || d.heartbeat_ms == 0 || d.ttl_secs * 1000 <= d.heartbeat_ms {
            return bad(
                "discovery: poll_ms and heartbeat_ms must be > 0, ttl_secs longer than a heartbeat",
            );
        }
        d.dns_server()?;
        if d.outlier_failures == 0 || d.outlier_base_ejection_ms > d.outlier_max_ejection_ms {
            return bad(
                "discovery: outlier_failures must be > 0, outlier_base_ejection_ms at most outlier_max_ejection_ms",
            );
        }
        if !crate::runtime_config::valid_environment(&self.environment) {
            return bad(
                "environment must be 1 to 32 characters of a-z, 0-9, _ and - (it is part of the runtime configuration keys)",
            );
        }
        let g = &self.gateway;
        if g.body_timeout_ms == 0 || g.max_streams_per_connection == 0 {
            return bad("gateway.body_timeout_ms and max_streams_per_connection must be > 0");
        }
        if g.admin_listen
            .is_some_and(|a| a.port() != 0 && a == g.listen)
        {
            return bad("gateway.admin_listen must differ from gateway.listen");
        }
        if !g.account_rate_per_sec.is_finite()
            || g.account_rate_per_sec < 0.0
            || g.rate_max_keys == 0
        {
            return bad("gateway.account_rate_per_sec must be a number >= 0, rate_max_keys > 0");
        }
        let cidr = |c: &str| {
            let (ip, len) = c.split_once('/').unwrap_or((c, ""));
            ip.parse::<std::net::IpAddr>().is_ok_and(|ip| {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                len.is_empty() || len.parse::<u8>().is_ok_and(|l| l <= max)
            })
        };
        if let Some(c) = g.trusted_proxies.iter().find(|c| !cidr(c)) {
            return Err(ConfigError::Invalid(format!(
                "gateway.trusted_proxies: `{c}` is not a CIDR"
            )));
        }
        if self.auth.issuer.is_empty() || self.auth.audience.is_empty() {
            return bad("auth.issuer and auth.audience must not be empty");
        }
        let ports: Vec<SocketAddr> = self.contexts().iter().map(|(_, s)| s.listen).collect();
        for (i, a) in ports.iter().enumerate() {
            if a.port() != 0 && ports[i + 1..].contains(a) {
                return Err(ConfigError::Invalid(format!("two services listen on {a}")));
            }
        }
        Ok(())
    }

    /// The settings of the context `name` (one of [`crate::contract::contexts`]) that runs as
    /// its own service; `None` for the edge's own context and unknown names.
    pub fn context(&self, name: &str) -> Option<ServiceSettings> {
        Some(match name {
            "user" => self.user.service(),
            "catalog" => self.catalog.clone(),
            "inventory" => self.inventory.service(),
            "order" => self.order.service(),
            "payment" => self.payment.clone(),
            "notification" => self.notification.service(),
            _ => return None,
        })
    }

    /// Every context of the contracts that runs as its own service, with its settings, by name.
    pub fn contexts(&self) -> Vec<(&'static str, ServiceSettings)> {
        crate::contract::contexts()
            .iter()
            .filter_map(|c| Some((c.name.as_str(), self.context(&c.name)?)))
            .collect()
    }

    /// The NATS URL services connect to: `nats.url`, else the embedded server's port.
    pub fn nats_url(&self) -> String {
        self.nats
            .url
            .clone()
            .unwrap_or_else(|| format!("nats://127.0.0.1:{}", self.nats.embedded_port))
    }

    /// Where keys live: `<data_dir>/keys`.
    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_context_of_the_contracts_but_the_edges_own_has_settings() {
        let settings = Settings::default();
        for context in crate::contract::contexts() {
            let expected = !crate::contract::EDGE_CONTEXTS.contains(&context.name.as_str());
            assert_eq!(
                settings.context(&context.name).is_some(),
                expected,
                "{}",
                context.name
            );
        }
        assert_eq!(settings.contexts().len(), 6);
    }

    #[allow(clippy::result_large_err)] // figment::Error is what Jail's closure must return
    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        figment::Jail::expect_with(|jail| {
            jail.create_file("polyshop.toml", toml)?;
            for (k, v) in env {
                jail.set_env(k, v);
            }
            let result = Settings::from_figment(Settings::figment(
                Path::new("polyshop.toml"),
                Env::prefixed("POLYSHOP_"),
            ));
            // Jail wants a figment result; carry ours out through a thread-local-free clone.
            LAST.with(|l| *l.borrow_mut() = Some(result.map_err(|e| e.to_string())));
            Ok(())
        });
        LAST.with(|l| l.borrow_mut().take())
            .expect("jail ran")
            .map_err(ConfigError::Invalid)
    }

    thread_local! {
        static LAST: std::cell::RefCell<Option<Result<Settings, String>>> =
            const { std::cell::RefCell::new(None) };
    }

    #[test]
    fn defaults_put_each_service_on_its_own_port() {
        let s = load("", &[]).expect("defaults are valid");
        assert_eq!(s.user.listen.port(), 50051);
        assert_eq!(s.inventory.listen.port(), 50053);
        assert_eq!(s.user.url(), "http://127.0.0.1:50051");
    }

    #[test]
    fn environment_overrides_file_and_splits_on_the_section() {
        let s = load(
            "data_dir = \"/from/file\"\n[user]\ndatabase_url = \"postgres://file\"\n",
            &[
                ("POLYSHOP_USER_DATABASE_URL", "postgres://env"),
                ("POLYSHOP_DATA_DIR", "/env"),
            ],
        )
        .expect("valid");
        let url = s.user.database_url.as_ref().map(|u| u.expose_secret());
        assert_eq!(url, Some("postgres://env"));
        assert_eq!(s.data_dir, PathBuf::from("/env"));
    }

    #[test]
    fn a_bad_value_is_a_clear_error() {
        let err = load("", &[("POLYSHOP_USER_LISTEN", "not-an-address")]).unwrap_err();
        assert!(
            err.to_string().to_lowercase().contains("user.listen"),
            "{err}"
        );
        let err = load("[auth]\ntoken_ttl_secs = 0\n", &[]).unwrap_err();
        assert!(err.to_string().contains("token_ttl_secs"), "{err}");
        let err = load("[auth]\ntoken_ttl_secs = 901\n", &[]).unwrap_err();
        assert!(err.to_string().contains("at most 15 minutes"), "{err}");
        assert!(load("[auth]\ntoken_ttl_secs = 900\n", &[]).is_ok());
        let err = load("[user]\nrefresh_token_ttl_secs = 0\n", &[]).unwrap_err();
        assert!(err.to_string().contains("refresh_token_ttl_secs"), "{err}");
    }

    #[test]
    fn secrets_show_in_neither_debug_nor_serialized_settings() {
        let mut s = Settings::default();
        s.user.admin_password = Some("hunter2-admin".into());
        s.user.database_url = Some("postgres://app:hunter2-db@db:5432/user".into());
        s.payment.database_url =
            Some("postgres://db/pay?password=hunter2-q&sslmode=require".into());
        let debug = format!("{s:?}");
        let json = serde_json::to_string(&s).expect("serializes");
        for shown in [&debug, &json] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert!(debug.contains("[REDACTED]"), "{debug}");
        let json: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(json["user"]["admin_password"], REDACTED);
        assert_eq!(
            json["user"]["database_url"],
            "postgres://app:<redacted>@db:5432/user"
        );
        assert_eq!(
            json["payment"]["database_url"],
            "postgres://db/pay?password=<redacted>&sslmode=require"
        );
        assert!(json["catalog"]["database_url"].is_null());
    }

    #[test]
    fn a_url_keeps_everything_but_its_password() {
        let cases = [
            (
                "postgres://u:p@h:5432/db",
                "postgres://u:<redacted>@h:5432/db",
            ),
            ("postgres://u:p@ss@h/db", "postgres://u:<redacted>@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("nats://tok:en@a:4222", "nats://tok:<redacted>@a:4222"),
            (
                "postgres://h/db?user=u&PASSWORD=p",
                "postgres://h/db?user=u&PASSWORD=<redacted>",
            ),
            ("http://127.0.0.1:50051", "http://127.0.0.1:50051"),
            ("probe", "probe"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(load("[user]\nlisten_port = 1\n", &[]).is_err());
    }
}
