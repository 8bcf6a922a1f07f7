//! `polyshop.admin.v1`, served by the edge: the status document gathered now from every
//! instance the registry knows (each one's `GET /health` and `GET /metrics`, in parallel,
//! with a short deadline), and the operator's actions on dead letters and flags, which go
//! through the broker as the operator identity (`polyshop-admin`).
//!
//! Why the edge: it already follows every context's instances (its upstream pools) and is
//! where admins arrive with their tokens; the access option on each RPC (`ACCESS_ADMIN`) is
//! enforced by the edge before the call reaches this service. The broker identity is taken
//! only when an action or the flags need it, so an edge without it still serves the status
//! (docs/decisions/0022-governance-at-the-edge.md).

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::jetstream;
use bytes::Bytes;
use futures::future::join_all;
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use polyshop::admin::{
    self,
    v1::{self as pb, admin_service_server::AdminService},
};
use polyshop_platform::{
    config::Settings,
    discovery::{Instance, Members, Pool},
    events::{dlq, identity},
    flags, runtime_config,
    status::with_reason,
};
use tokio::sync::Mutex;
use tonic::{Code, Request, Response, Status};

pub mod exposition;
pub mod status;

/// How long one instance may take to answer its health or metrics.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one broker call of the operator's may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(3);

/// The admin service; see the module docs.
pub struct Governance {
    /// Each remote context's instances.
    pools: Vec<(String, Arc<Pool<crate::upstream::Remote>>)>,
    /// The edges' instances (this one included).
    edges: Members,
    settings: Settings,
    http: Client<HttpConnector, Empty<Bytes>>,
    /// The broker as `polyshop-admin`, connected on first need.
    broker: Mutex<Option<jetstream::Context>>,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance").finish_non_exhaustive()
    }
}

impl Governance {
    /// Governance over `pools` (every remote context) and `edges`, with `settings` for the
    /// broker.
    pub fn new(
        pools: Vec<(String, Arc<Pool<crate::upstream::Remote>>)>,
        edges: Members,
        settings: Settings,
    ) -> Self {
        Self {
            pools,
            edges,
            settings,
            http: Client::builder(TokioExecutor::new()).build_http(),
            broker: Mutex::new(None),
        }
    }

    /// `GET <base><path>` with the scrape deadline: the body when the status is 2xx or 503
    /// (a health check that fails still says why).
    async fn get(&self, base: &str, path: &str) -> Result<Bytes, String> {
        let uri: http::Uri = format!("{}{path}", base.trim_end_matches('/'))
            .parse()
            .map_err(|e| format!("{e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err("only plain-HTTP instances are read (TLS between services is on)".into());
        }
        let call = async {
            let response = self.http.get(uri).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if status.is_success() || status == http::StatusCode::SERVICE_UNAVAILABLE {
                Ok(body)
            } else {
                Err(format!("{path} answered {status}"))
            }
        };
        tokio::time::timeout(SCRAPE_TIMEOUT, call)
            .await
            .map_err(|_| format!("{path} did not answer within {SCRAPE_TIMEOUT:?}"))?
    }

    /// What `instance` of `context` says; a problem for each part it could not read.
    async fn scrape(&self, context: String, instance: Instance) -> (status::Scraped, Vec<String>) {
        let (health, metrics) = tokio::join!(
            self.get(&instance.url, "/health"),
            self.get(&instance.url, "/metrics")
        );
        let mut problems = Vec::new();
        let health = match health.and_then(|b| {
            serde_json::from_slice::<status::HealthReport>(&b).map_err(|e| e.to_string())
        }) {
            Ok(h) => Some(h),
            Err(why) => {
                problems.push(format!("{context} {}: health: {why}", instance.url));
                None
            }
        };
        let metrics = match metrics {
            Ok(text) => exposition::parse(&String::from_utf8_lossy(&text)),
            Err(why) => {
                problems.push(format!("{context} {}: metrics: {why}", instance.url));
                Vec::new()
            }
        };
        (
            status::Scraped {
                context,
                instance,
                health,
                metrics,
            },
            problems,
        )
    }

    /// The broker as the operator identity, connecting on first use.
    async fn broker(&self) -> Result<jetstream::Context, Status> {
        let mut broker = self.broker.lock().await;
        if let Some(js) = broker.as_ref() {
            return Ok(js.clone());
        }
        let unavailable = |why: &str| {
            with_reason(
                Code::Unavailable,
                admin::v1::ErrorReason::BrokerUnavailable,
                format!("the broker cannot be reached as the operator identity: {why}"),
            )
        };
        let credentials = operator_credentials(&self.settings)
            .ok_or_else(|| unavailable("this edge has no credentials for it"))?;
        let client = identity::connect(
            &self.settings.nats_url(),
            "polyshop-gateway-governance",
            &credentials,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "governance: no broker connection as the operator");
            unavailable("the connection failed")
        })?;
        let js = jetstream::new(client);
        *broker = Some(js.clone());
        Ok(js)
    }

    /// Every declared flag: its configured value, and the operator's override when the
    /// broker can be read.
    async fn flags(&self) -> Result<Vec<pb::Flag>, String> {
        let js = self.broker().await.map_err(|s| s.message().to_owned())?;
        let overrides = on_broker(flags::overrides(&js))
            .await
            .map_err(|s| s.message().to_owned())?;
        Ok(flags::KNOWN
            .iter()
            .map(|spec| {
                let configured = self
                    .settings
                    .flags
                    .get(spec.name)
                    .copied()
                    .unwrap_or(spec.default);
                let overridden = overrides.get(spec.name).copied();
                pb::Flag {
                    name: spec.name.to_owned(),
                    enabled: overridden.unwrap_or(configured),
                    overridden: overridden.is_some(),
                    // Counted from the instances' metrics by the caller.
                    instances_reporting: 0,
                    instances_in_force: 0,
                }
            })
            .collect())
    }

    /// The version of each service's runtime settings (decision 0021).
    async fn config_versions(&self) -> Result<Vec<pb::ConfigVersion>, String> {
        let js = self.broker().await.map_err(|s| s.message().to_owned())?;
        let env = &self.settings.environment;
        let mut versions = Vec::new();
        for service in runtime_config::services() {
            let version = on_broker(runtime_config::version(&js, env, service))
                .await
                .map_err(|s| s.message().to_owned())?;
            versions.push(pb::ConfigVersion {
                service: service.to_owned(),
                version: i64::try_from(version).unwrap_or(i64::MAX),
            });
        }
        Ok(versions)
    }

    /// One flag as it stands now.
    async fn flag(&self, name: &str) -> Result<pb::Flag, Status> {
        self.flags()
            .await
            .map_err(|why| {
                with_reason(
                    Code::Unavailable,
                    admin::v1::ErrorReason::BrokerUnavailable,
                    why,
                )
            })?
            .into_iter()
            .find(|f| f.name == name)
            .ok_or_else(|| unknown_flag(name))
    }
}

/// The operator identity's credentials: the password `polyshop up` generated for it under
/// the data dir; none needed on a broker without authorization (no credentials configured
/// for this process either); `None` when this edge runs as its own identity and has none for
/// the operator's.
fn operator_credentials(settings: &Settings) -> Option<identity::Credentials> {
    if let Some(generated) = identity::Credentials::generated(&settings.data_dir, identity::ADMIN) {
        return Some(generated);
    }
    let nats = &settings.nats;
    (nats.credentials_file.is_none() && nats.user.is_none() && nats.password.is_none())
        .then_some(identity::Credentials::None)
}

/// `call` with the broker deadline: a broker that does not answer (or refuses a subject,
/// which NATS answers with silence) fails the call instead of holding it.
async fn on_broker<T, E: std::fmt::Display>(
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, Status> {
    match tokio::time::timeout(BROKER_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(broker_error(e)),
        Err(_) => Err(broker_error("no answer in time")),
    }
}

fn unknown_flag(name: &str) -> Status {
    with_reason(
        Code::NotFound,
        admin::v1::ErrorReason::FlagNotFound,
        format!("no flag {name}; known: {}", flags::names()),
    )
}

fn broker_error(e: impl std::fmt::Display) -> Status {
    tracing::warn!(error = %e, "governance: broker call failed");
    with_reason(
        Code::Unavailable,
        admin::v1::ErrorReason::BrokerUnavailable,
        "the broker did not answer",
    )
}

#[tonic::async_trait]
impl AdminService for Governance {
    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let mut targets: Vec<(String, Instance)> = Vec::new();
        for (context, pool) in &self.pools {
            for member in pool.members().iter() {
                targets.push((context.clone(), member.instance.clone()));
            }
        }
        for edge in self.edges.borrow().iter() {
            targets.push(("gateway".to_owned(), edge.clone()));
        }
        let (results, flags) = tokio::join!(
            join_all(
                targets
                    .into_iter()
                    .map(|(context, instance)| self.scrape(context, instance)),
            ),
            async { tokio::join!(self.flags(), self.config_versions()) }
        );
        let (flags, config) = flags;
        let mut problems = Vec::new();
        let scraped: Vec<status::Scraped> = results
            .into_iter()
            .map(|(s, p)| {
                problems.extend(p);
                s
            })
            .collect();
        let routed: Vec<String> = self.pools.iter().map(|(c, _)| c.clone()).collect();
        let mut document = status::document(&scraped, &routed, polyshop_platform::now_millis());
        match flags {
            Ok(mut flags) => {
                status::flags_in_force(&scraped, &mut flags);
                document.flags = flags;
            }
            Err(why) => problems.push(format!("flags: {why}")),
        }
        match config {
            Ok(config) => document.config = config,
            Err(why) => problems.push(format!("runtime config: {why}")),
        }
        document.degraded = problems;
        Ok(Response::new(document))
    }

    async fn list_dead_letters(
        &self,
        _request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        let js = self.broker().await?;
        let letters = on_broker(dlq::list(&js)).await?;
        Ok(Response::new(pb::ListDeadLettersResponse {
            dead_letters: letters
                .into_iter()
                .map(|l| pb::DeadLetter {
                    sequence: i64::try_from(l.sequence).unwrap_or(i64::MAX),
                    event_id: l.event_id,
                    subject: l.subject,
                    consumer: l.consumer,
                    reason: l.reason,
                })
                .collect(),
        }))
    }

    async fn redrive_dead_letters(
        &self,
        request: Request<pb::RedriveDeadLettersRequest>,
    ) -> Result<Response<pb::RedriveDeadLettersResponse>, Status> {
        let sequence = request
            .into_inner()
            .sequence
            .and_then(|s| u64::try_from(s).ok());
        let js = self.broker().await?;
        if let Some(sequence) = sequence {
            let known = on_broker(dlq::list(&js)).await?;
            if !known.iter().any(|l| l.sequence == sequence) {
                return Err(with_reason(
                    Code::NotFound,
                    admin::v1::ErrorReason::DeadLetterNotFound,
                    format!("no dead letter {sequence}"),
                ));
            }
        }
        let n = on_broker(dlq::redrive(&js, sequence)).await?;
        tracing::info!(
            redriven = n,
            ?sequence,
            "dead letters redriven by an operator"
        );
        Ok(Response::new(pb::RedriveDeadLettersResponse {
            redriven: i64::try_from(n).unwrap_or(i64::MAX),
        }))
    }

    async fn set_flag(
        &self,
        request: Request<pb::SetFlagRequest>,
    ) -> Result<Response<pb::SetFlagResponse>, Status> {
        let request = request.into_inner();
        flags::spec(&request.name).ok_or_else(|| unknown_flag(&request.name))?;
        let js = self.broker().await?;
        on_broker(flags::set(&js, &request.name, Some(request.enabled))).await?;
        tracing::info!(flag = %request.name, enabled = request.enabled, "flag set by an operator");
        Ok(Response::new(pb::SetFlagResponse {
            flag: Some(self.flag(&request.name).await?),
        }))
    }

    async fn clear_flag(
        &self,
        request: Request<pb::ClearFlagRequest>,
    ) -> Result<Response<pb::ClearFlagResponse>, Status> {
        let name = request.into_inner().name;
        flags::spec(&name).ok_or_else(|| unknown_flag(&name))?;
        let js = self.broker().await?;
        on_broker(flags::set(&js, &name, None)).await?;
        tracing::info!(flag = %name, "flag override cleared by an operator");
        Ok(Response::new(pb::ClearFlagResponse {
            flag: Some(self.flag(&name).await?),
        }))
    }
}
