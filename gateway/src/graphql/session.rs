//! One GraphQL request's calls: each resolved RPC goes through the same path as a JSON call
//! (access rule, validation, deadline, upstream pool, counter), with the caller's headers.
//! Relations are loaded in rounds: every resolver that asks for the same relation while the
//! request's futures are being polled adds its key, and one call serves them all.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak, atomic::AtomicUsize, atomic::Ordering},
    time::{Duration, Instant},
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use http::HeaderMap;
use prost_reflect::{DynamicMessage, FieldDescriptor, MessageDescriptor, SerializeOptions};
use serde_json::{Map, Value as Json};
use tonic::Code;
use tracing::Instrument;

use super::schema::text;
use crate::{
    edge::{ClientAddr, Edge},
    errors::EdgeError,
    json, ratelimit,
    routes::{LimitClass, RouteTable, Rpc},
    transcode::Reply,
};

/// A field resolved by another RPC, from a message's `(polyshop.api.v1.relations)`.
#[derive(Debug)]
pub struct Relation {
    /// The GraphQL field name.
    pub field: String,
    /// The RPC that resolves it.
    pub rpc: Arc<Rpc>,
    /// The parent's key field, by JSON name.
    pub key: String,
    /// The request field taking the key (proto name, to leave it out of the arguments).
    pub request_field: String,
    request_json: String,
    /// Whether keys are gathered into one call.
    pub batched: bool,
    response_field: FieldDescriptor,
    match_field: Option<String>,
}

impl Relation {
    /// The relation `option` declares on `message`; `None` when its RPC is not exposed or a
    /// field it names does not exist (the contract tests check both).
    pub fn from_option(
        option: &DynamicMessage,
        message: &MessageDescriptor,
        routes: &RouteTable,
    ) -> Option<Self> {
        let method = text(option, "method");
        let (service, name) = method.rsplit_once('.')?;
        let rpc = Arc::clone(routes.rpc(&format!("/{service}/{name}"))?);
        let key = message.get_field_by_name(&text(option, "key"))?;
        let request = rpc
            .method
            .input()
            .get_field_by_name(&text(option, "request_field"))?;
        let output = rpc.method.output();
        let response_field = output.get_field_by_name(&text(option, "response_field"))?;
        let match_name = text(option, "match_field");
        let match_field = match (request.is_list(), &response_field.kind()) {
            (true, prost_reflect::Kind::Message(m)) => {
                Some(m.get_field_by_name(&match_name)?.json_name().to_owned())
            }
            (true, _) => return None,
            (false, _) => None,
        };
        Some(Self {
            field: text(option, "field"),
            key: key.json_name().to_owned(),
            request_field: request.name().to_owned(),
            request_json: request.json_name().to_owned(),
            batched: request.is_list(),
            response_field,
            match_field,
            rpc,
        })
    }

    /// The response field it reads (one element of it per parent, when keys are batched).
    pub fn output_field(&self) -> FieldDescriptor {
        self.response_field.clone()
    }

    /// Whether the field is a list for one parent (not so for a batched one).
    pub fn is_list(&self) -> bool {
        !self.batched && self.response_field.is_list()
    }
}

type Loaded = Result<Arc<HashMap<String, Result<Json, Arc<EdgeError>>>>, Arc<EdgeError>>;

/// Keys waiting for one call, and that call's result.
struct Round {
    keys: Arc<Mutex<Vec<String>>>,
    result: Shared<BoxFuture<'static, Loaded>>,
}

/// What one GraphQL request may do upstream, and what it did.
pub struct Session {
    edge: Arc<Edge>,
    headers: HeaderMap,
    client: Option<ClientAddr>,
    limit_key: String,
    expires: Instant,
    /// Calls paid for from the caller's bucket before the query ran (its counted cost).
    prepaid: usize,
    max_calls: usize,
    calls: AtomicUsize,
    rounds: Mutex<HashMap<String, Round>>,
    this: Weak<Session>,
}

impl Session {
    /// A session for a request with `headers`, its calls due within `deadline`.
    pub fn new(
        edge: Arc<Edge>,
        headers: HeaderMap,
        client: Option<ClientAddr>,
        limit_key: String,
        deadline: Duration,
        prepaid: usize,
    ) -> Arc<Self> {
        let max_calls = edge.settings.graphql_max_cost;
        Arc::new_cyclic(|this| Self {
            edge,
            headers,
            client,
            limit_key,
            expires: Instant::now() + deadline,
            prepaid,
            max_calls,
            calls: AtomicUsize::new(0),
            rounds: Mutex::new(HashMap::new()),
            this: this.clone(),
        })
    }

    /// Upstream calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Calls `rpc` with `request` (proto3 JSON) as the caller, answering proto3 JSON.
    ///
    /// # Errors
    /// What the JSON path answers: the access rule's UNAUTHENTICATED / PERMISSION_DENIED,
    /// INVALID_ARGUMENT with field violations, RESOURCE_EXHAUSTED past the cost ceiling or
    /// the rate limit, DEADLINE_EXCEEDED, or the upstream's status.
    pub async fn call(&self, rpc: &Rpc, request: Json) -> Result<Json, EdgeError> {
        let principal = self.edge.auth.authorize(rpc.access, &self.headers).await?;
        let made = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if made > self.max_calls {
            return Err(EdgeError::new(
                Code::ResourceExhausted,
                format!(
                    "the query makes more than {} upstream calls",
                    self.max_calls
                ),
            ));
        }
        if made > self.prepaid {
            self.edge
                .limiter
                .check(LimitClass::Standard, &self.limit_key)?;
        }
        let message = DynamicMessage::deserialize(rpc.method.input(), request)
            .map_err(|e| EdgeError::bad_request(format!("invalid arguments: {e}")))?;
        if rpc.class == LimitClass::Credentials {
            let ip = self.client.map_or_else(
                || ratelimit::client::ip_key(std::net::Ipv4Addr::UNSPECIFIED.into()),
                |c| ratelimit::client::ip_key(c.0.ip()),
            );
            self.edge.limiter.check(LimitClass::Credentials, &ip)?;
            let account = ratelimit::client::account(rpc, &message);
            self.edge.limiter.check_account(account.as_deref())?;
        }
        if self.edge.settings.validate_requests {
            rpc.check(&message)?;
        }
        let left = self.expires.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(EdgeError::new(
                Code::DeadlineExceeded,
                "the query ran out of time",
            ));
        }
        let span = tracing::info_span!("graphql.rpc", rpc = %rpc.path, upstream = %rpc.upstream);
        let result = json::call(&self.edge, rpc, message, &self.headers, principal, left)
            .instrument(span)
            .await;
        let code = result.as_ref().map_or_else(|e| e.code(), |_| Code::Ok);
        polyshop_platform::metrics::inc(
            "polyshop_edge_graphql_rpcs_total",
            "RPCs GraphQL queries resolved, per method and code.",
            &[("rpc", &rpc.path), ("code", crate::errors::code_name(code))],
        );
        to_json(rpc, result?)
    }

    /// The value of `relation` for the parent with `key`, loaded together with every other
    /// parent asking in the same round; `None` when there is none.
    ///
    /// # Errors
    /// As [`Session::call`], for the round's call or this key's.
    pub async fn related(
        &self,
        relation: Arc<Relation>,
        key: String,
        args: Map<String, Json>,
    ) -> Result<Option<Json>, Arc<EdgeError>> {
        let batch = format!(
            "{}|{}|{}",
            relation.rpc.path,
            relation.field,
            Json::Object(args.clone())
        );
        let round = {
            let mut rounds = self
                .rounds
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let round = rounds.entry(batch.clone()).or_insert_with(|| {
                let keys = Arc::new(Mutex::new(Vec::new()));
                let load = load(self.this.clone(), relation, batch, Arc::clone(&keys), args);
                Round {
                    keys,
                    result: load.boxed().shared(),
                }
            });
            round
                .keys
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(key.clone());
            round.result.clone()
        };
        let loaded = round.await?;
        match loaded.get(&key) {
            Some(Ok(v)) => Ok(Some(v.clone())),
            Some(Err(e)) => Err(Arc::clone(e)),
            None => Ok(None),
        }
    }
}

/// One round of `relation`: waits until no resolver adds a key for a whole turn of the
/// request's futures, then calls once (batched) or once per distinct key.
async fn load(
    session: Weak<Session>,
    relation: Arc<Relation>,
    batch: String,
    keys: Arc<Mutex<Vec<String>>>,
    args: Map<String, Json>,
) -> Loaded {
    let count = || {
        keys.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    };
    let mut seen = 0;
    while count() != seen {
        seen = count();
        tokio::task::yield_now().await;
    }
    let gone = || Arc::new(EdgeError::new(Code::Cancelled, "the query ended"));
    let session = session.upgrade().ok_or_else(gone)?;
    session
        .rounds
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&batch);
    let mut wanted = std::mem::take(
        &mut *keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    wanted.sort();
    wanted.dedup();
    let request = |value: Json| {
        let mut request = args.clone();
        request.insert(relation.request_json.clone(), value);
        Json::Object(request)
    };
    let field = relation.response_field.json_name();
    let mut found = HashMap::new();
    if let Some(matching) = &relation.match_field {
        let keys = Json::Array(wanted.into_iter().map(Json::String).collect());
        let reply = session
            .call(&relation.rpc, request(keys))
            .await
            .map_err(Arc::new)?;
        for item in reply
            .get(field)
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(key) = item.get(matching).and_then(Json::as_str) {
                found.insert(key.to_owned(), Ok(item.clone()));
            }
        }
    } else {
        let (session, rpc) = (&session, &relation.rpc);
        let calls = wanted.iter().map(|key| {
            let request = request(Json::String(key.clone()));
            async move { session.call(rpc, request).await }
        });
        for (key, reply) in wanted.iter().zip(futures::future::join_all(calls).await) {
            let value = reply.map(|r| r.get(field).cloned().unwrap_or(Json::Null));
            found.insert(key.clone(), value.map_err(Arc::new));
        }
    }
    Ok(Arc::new(found))
}

/// An upstream's reply to `rpc` as proto3 JSON, default values written as the JSON path does.
fn to_json(rpc: &Rpc, reply: Reply) -> Result<Json, EdgeError> {
    let message = match reply {
        Reply::Message(m) => m,
        Reply::Wire(bytes) => DynamicMessage::decode(rpc.method.output(), bytes).map_err(|e| {
            EdgeError::new(
                Code::Internal,
                format!("upstream sent an undecodable response: {e}"),
            )
        })?,
    };
    let options = SerializeOptions::new().skip_default_fields(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| {
            tracing::error!(error = %e, "cannot serialize a response");
            EdgeError::new(Code::Internal, "internal error")
        })
}
