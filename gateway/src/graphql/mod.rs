//! GraphQL at the edge (decision 0023): `POST /graphql` runs a query against a schema built at
//! start from the descriptor set ([`schema`]), `GET /graphql` serves an explorer page. A query
//! is measured before it runs ([`limits`]), pays its cost in rate-limit tokens, and each RPC it
//! resolves goes the JSON path's way ([`session`]): access rule, validation, deadline,
//! upstream pool and counters, with the caller's token and request id.

pub mod errors;
pub mod limits;
pub mod schema;
pub mod session;
pub mod types;

use std::sync::Arc;

use async_graphql::dynamic::Schema;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use polyshop_platform::{
    auth::Principal,
    config::GatewaySettings,
    contract::{self, Access},
};
use prost_reflect::DescriptorPool;
use tonic::body::Body;

use crate::{
    edge::{AccessNote, ClientAddr, Edge},
    errors::{EdgeError, json_response},
    json::{self, BodyLimits},
    routes::{LimitClass, RouteTable},
};

/// The path GraphQL is served at.
pub const PATH: &str = "/graphql";

/// The schema and the limits queries are held to.
pub struct Endpoint {
    schema: Schema,
    shape: schema::Shape,
    limits: limits::Limits,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Builds the schema of the RPCs in `routes`.
    ///
    /// # Errors
    /// The schema builder's complaint, should two contract names clash in GraphQL.
    pub fn build(
        routes: &RouteTable,
        pool: &DescriptorPool,
        settings: &GatewaySettings,
    ) -> Result<Self, String> {
        let (mut builder, shape) = schema::build(routes, pool);
        if !settings.graphql_introspection {
            builder = builder.disable_introspection();
        }
        let schema = builder
            .finish()
            .map_err(|e| format!("graphql schema: {e}"))?;
        Ok(Self {
            schema,
            shape,
            limits: limits::Limits::of(settings),
        })
    }

    /// The schema in SDL.
    pub fn sdl(&self) -> String {
        self.schema.sdl()
    }
}

/// The schema of the contracts in SDL, as `polyshop admin graphql-schema` prints it.
///
/// # Errors
/// A bad HTTP binding in the contract, or a schema that does not build.
pub fn sdl() -> Result<String, String> {
    let pool = contract::pool();
    let routes = RouteTable::from_pool(pool).map_err(|e| e.to_string())?;
    Endpoint::build(&routes, pool, &GatewaySettings::default()).map(|e| e.sdl())
}

/// Handles a request to [`PATH`].
pub async fn handle(edge: Arc<Edge>, request: Request<Incoming>) -> Response<Body> {
    let mut note = AccessNote {
        protocol: "graphql",
        rpc: Some(PATH.to_owned()),
        user: None,
    };
    let mut response = match *request.method() {
        Method::GET => explorer(),
        Method::POST => serve(&edge, request, &mut note)
            .await
            .unwrap_or_else(refusal),
        _ => EdgeError::method_not_allowed(&[Method::GET, Method::POST]).into_json(),
    };
    response.extensions_mut().insert(note);
    response
}

/// A request refused before it ran, in GraphQL's error shape with the JSON path's status
/// and headers (401's `WWW-Authenticate`, 429's `Retry-After`).
fn refusal(error: EdgeError) -> Response<Body> {
    let body = errors::body(&error).to_string();
    let mut response = error.into_json();
    *response.body_mut() = Body::new(http_body_util::Full::new(Bytes::from(body)));
    response
}

async fn serve(
    edge: &Arc<Edge>,
    request: Request<Incoming>,
    note: &mut AccessNote,
) -> Result<Response<Body>, EdgeError> {
    let (parts, body) = request.into_parts();
    let endpoint = &edge.graphql;
    let principal = edge.auth.authorize(Access::Public, &parts.headers).await?;
    note.user = principal
        .as_deref()
        .and_then(Principal::user_id)
        .map(str::to_owned);
    let client = parts.extensions.get::<ClientAddr>().copied();
    let key = edge.limit_key(LimitClass::Standard, principal.as_deref(), client);
    let verdict = edge.limiter.check(LimitClass::Standard, &key)?;
    let limits = BodyLimits {
        bytes: edge.settings.max_body_bytes,
        time: std::time::Duration::from_millis(edge.settings.body_timeout_ms),
    };
    let body = json::read_body(body, &parts.headers, limits)
        .await
        .map_err(|e| e.with_headers(&verdict.headers))?;
    let mut query: async_graphql::Request = serde_json::from_slice(&body)
        .map_err(|e| EdgeError::bad_request(format!("not a GraphQL request: {e}")))?;
    let measure = limits::check(&endpoint.shape, &mut query, endpoint.limits)?;
    // The first token paid for the request; the rest of its calls pay now, before any runs.
    for _ in 1..measure.cost {
        edge.limiter.check(LimitClass::Standard, &key)?;
    }
    let _admission = edge.admit(client)?;
    let deadline = edge.deadline(&parts.headers);
    let session = session::Session::new(
        Arc::clone(edge),
        parts.headers,
        client,
        key,
        deadline,
        measure.cost.max(1),
    );
    let answer = endpoint.schema.execute(query.data(session)).await;
    let bytes = serde_json::to_vec(&answer).map_err(|e| {
        tracing::error!(error = %e, "cannot serialize a GraphQL response");
        EdgeError::new(tonic::Code::Internal, "internal error")
    })?;
    let mut response = json_response(StatusCode::OK, bytes.into());
    response.headers_mut().extend(verdict.headers);
    Ok(response)
}

/// `GET /graphql`: a small explorer (query, variables, token, answer) that needs nothing
/// from outside the edge.
fn explorer() -> Response<Body> {
    let mut response = json_response(StatusCode::OK, Bytes::from_static(EXPLORER.as_bytes()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

const EXPLORER: &str = include_str!("explorer.html");
