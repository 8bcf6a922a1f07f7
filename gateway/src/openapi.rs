//! The OpenAPI 3.1 document served at `GET /openapi.json`, generated from the route table and
//! the descriptors: every route with its path and query parameters, request and response
//! schemas (proto comments as descriptions), the error responses with every `ErrorInfo`
//! reason the contracts declare, and the bearer scheme.

use std::collections::{BTreeMap, BTreeSet};

use polyshop_platform::contract::Access;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::{
    routes::{BodySpec, HttpRoute, RouteTable, field_path},
    schema::{Comments, Schemas, reference},
};

const ERROR_SCHEMA: &str = "polyshop.edge.Error";
/// `google.rpc.ErrorInfo` as the edge sends it, with the declared reasons.
const ERROR_INFO_SCHEMA: &str = "polyshop.edge.ErrorInfo";
/// Query parameters are flattened this deep into nested messages.
const MAX_QUERY_DEPTH: usize = 3;

/// Error statuses every operation may answer, with what they mean at the edge.
const ERRORS: [(&str, &str); 11] = [
    (
        "400",
        "The request is invalid (malformed JSON, unknown field, failed validation).",
    ),
    ("401", "The access token is missing or invalid."),
    ("403", "The caller may not do this."),
    ("404", "Not found."),
    ("409", "Conflict with the current state."),
    ("413", "The request body is too large."),
    ("429", "Rate limit exceeded; see Retry-After."),
    ("500", "Internal error."),
    ("501", "Not implemented."),
    ("503", "A service is unavailable or the edge is overloaded."),
    ("504", "A service did not answer in time."),
];

/// Builds the document for `routes`.
pub fn document(routes: &RouteTable) -> Value {
    let pool = polyshop_platform::contract::pool();
    let comments = Comments::of(pool);
    let mut schemas = Schemas::new(&comments);
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for route in routes.http_routes() {
        let base = format!(
            "{}_{}",
            service_label(route.rpc.method.parent_service()),
            route.rpc.method.name()
        );
        let n = seen.entry(base.clone()).or_default();
        let operation_id = if *n == 0 { base } else { format!("{base}_{n}") };
        *n += 1;
        let op = operation(route, operation_id, &comments, &mut schemas);
        paths
            .entry(route.template.openapi_path())
            .or_default()
            .insert(route.method.as_str().to_ascii_lowercase(), op);
    }
    let mut components = Map::new();
    for (name, schema) in std::mem::take(&mut schemas.components) {
        components.insert(name, schema);
    }
    components.insert(ERROR_SCHEMA.into(), error_schema());
    components.insert(ERROR_INFO_SCHEMA.into(), error_info_schema(&comments));
    let mut tags: Vec<Value> = routes
        .services()
        .iter()
        .filter_map(|s| pool.get_service_by_name(s))
        .map(|s| {
            json!({
                "name": service_label(&s),
                "description": comments.get(s.parent_file().name(), s.path()).unwrap_or_default(),
            })
        })
        .collect();
    tags.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Polyshop API",
            "version": "v1",
            "description": "JSON over HTTP, transcoded by the edge from the gRPC contracts in proto/. \
                Errors use one shape: {\"error\": {code, status, message, details}}.",
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            },
        },
    })
}

/// A service's tag and operation id prefix: its name (`CatalogService`), with the version
/// of a later package than v1 (`CatalogServiceV2`), so versions served side by side differ
/// and v1's ids stay as they were.
fn service_label(service: &prost_reflect::ServiceDescriptor) -> String {
    match service.package_name().rsplit('.').next() {
        Some(version) if version != "v1" && version.starts_with('v') => {
            format!("{}V{}", service.name(), &version[1..])
        }
        _ => service.name().to_owned(),
    }
}

fn operation(
    route: &HttpRoute,
    operation_id: String,
    comments: &Comments,
    schemas: &mut Schemas<'_>,
) -> Value {
    let method = &route.rpc.method;
    let doc = comments
        .get(method.parent_file().name(), method.path())
        .unwrap_or_default();
    let input = method.input();
    let path_fields: Vec<String> = route
        .template
        .variables()
        .iter()
        .map(|v| v.field_path.clone())
        .collect();
    let mut parameters = Vec::new();
    for var in &path_fields {
        let Ok(fields) = field_path(&input, var) else {
            continue;
        };
        let Some(last) = fields.last() else { continue };
        parameters.push(parameter(
            var,
            "path",
            true,
            schemas.field(last),
            comments,
            last,
        ));
    }
    let mut op = json!({
        "operationId": operation_id,
        "tags": [service_label(method.parent_service())],
        "summary": doc.lines().next().unwrap_or_default(),
        "description": doc,
        "x-grpc-method": route.rpc.path,
        "x-polyshop-access": format!("{:?}", route.rpc.access).to_ascii_uppercase(),
    });
    let top_level: Vec<&str> = path_fields
        .iter()
        .filter(|p| !p.contains('.'))
        .map(String::as_str)
        .collect();
    match &route.body {
        BodySpec::All => {
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": schemas.object(&input, &top_level) } },
            });
        }
        BodySpec::Field(field) => {
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": schemas.field(field) } },
            });
        }
        BodySpec::None => {}
    }
    if !matches!(route.body, BodySpec::All) {
        let skip_field = match &route.body {
            BodySpec::Field(f) => Some(f.name().to_owned()),
            _ => None,
        };
        query_parameters(
            &input,
            "",
            0,
            &path_fields,
            skip_field.as_deref(),
            comments,
            schemas,
            &mut parameters,
        );
    }
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    let output = match &route.response_body {
        Some(field) => schemas.field(field),
        None => schemas.message(&method.output()),
    };
    op["responses"] = responses(output, route);
    if route.rpc.access != Access::Public {
        op["security"] = json!([{ "bearerAuth": [] }]);
    }
    if route.rpc.deprecated {
        op["deprecated"] = Value::Bool(true);
    }
    if let Some(sunset) = &route.rpc.sunset {
        op["x-sunset"] = Value::String(sunset.sunset.to_str().unwrap_or_default().to_owned());
        op["x-successor"] = json!({
            "rpc": sunset.successor,
            "route": sunset.successor_route,
        });
    }
    op
}

fn parameter(
    name: &str,
    location: &str,
    required: bool,
    schema: Value,
    comments: &Comments,
    field: &FieldDescriptor,
) -> Value {
    let mut p = json!({ "name": name, "in": location, "required": required, "schema": schema });
    if let Some(text) = comments.get(field.parent_file().name(), field.path()) {
        p["description"] = Value::String(text.to_owned());
    }
    if field.is_list() {
        p["style"] = Value::String("form".into());
        p["explode"] = Value::Bool(true);
    }
    p
}

#[allow(clippy::too_many_arguments)] // a recursive walk carrying its context
fn query_parameters(
    message: &MessageDescriptor,
    prefix: &str,
    depth: usize,
    path_fields: &[String],
    skip_field: Option<&str>,
    comments: &Comments,
    schemas: &mut Schemas<'_>,
    out: &mut Vec<Value>,
) {
    for field in message.fields() {
        let name = format!("{prefix}{}", field.name());
        if path_fields.contains(&name) || (depth == 0 && skip_field == Some(field.name())) {
            continue;
        }
        match field.kind() {
            Kind::Message(m) if !is_text_wkt(&m) => {
                if !field.is_list() && !field.is_map() && depth < MAX_QUERY_DEPTH {
                    let nested = format!("{name}.");
                    query_parameters(
                        &m,
                        &nested,
                        depth + 1,
                        path_fields,
                        None,
                        comments,
                        schemas,
                        out,
                    );
                }
            }
            _ if field.is_map() => {}
            _ => out.push(parameter(
                &name,
                "query",
                // A top-level field the contract requires (a nested one is required only
                // when its parent is sent).
                depth == 0
                    && polyshop_platform::validate::constraints(&field).is_some_and(|c| c.required),
                schemas.field(&field),
                comments,
                &field,
            )),
        }
    }
}

fn is_text_wkt(m: &MessageDescriptor) -> bool {
    matches!(
        m.full_name(),
        "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.StringValue"
            | "google.protobuf.BoolValue"
            | "google.protobuf.Int32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.FloatValue"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.BytesValue"
    )
}

fn responses(output: Value, route: &HttpRoute) -> Value {
    let header =
        |description: &str| json!({ "description": description, "schema": { "type": "string" } });
    // A deprecated method says so on every answer, errors included.
    let mut lifecycle = Map::new();
    if let Some(sunset) = &route.rpc.sunset {
        let value = |v: &http::HeaderValue| v.to_str().unwrap_or_default().to_owned();
        lifecycle.insert(
            "Deprecation".into(),
            header(&format!(
                "RFC 9745: deprecated since {} (Unix time).",
                value(&sunset.deprecation)
            )),
        );
        lifecycle.insert(
            "Sunset".into(),
            header(&format!(
                "RFC 8594: may stop answering from {}.",
                value(&sunset.sunset)
            )),
        );
        lifecycle.insert(
            "Link".into(),
            header(&format!(
                "The successor, rel=\"successor-version\": {}.",
                sunset
                    .successor_route
                    .as_deref()
                    .unwrap_or(&sunset.successor)
            )),
        );
    } else if route.rpc.deprecated {
        lifecycle.insert("Deprecation".into(), header("Set on deprecated methods."));
    }
    let mut headers = lifecycle.clone();
    headers.extend([
        (
            "X-Request-Id".into(),
            header("The request id, as sent or generated; also passed to the services."),
        ),
        (
            "RateLimit".into(),
            header("Remaining quota (IETF RateLimit header fields)."),
        ),
        (
            "RateLimit-Policy".into(),
            header("The quota policy (IETF RateLimit header fields)."),
        ),
    ]);
    let mut out = Map::new();
    out.insert(
        "200".into(),
        json!({
            "description": "OK",
            "headers": headers,
            "content": { "application/json": { "schema": output } },
        }),
    );
    for (code, description) in ERRORS {
        let mut headers = lifecycle.clone();
        match code {
            "401" => {
                headers.insert(
                    "WWW-Authenticate".into(),
                    header("Bearer challenge (RFC 6750)."),
                );
            }
            "429" => {
                headers.insert("Retry-After".into(), header("Seconds to wait."));
            }
            _ => {}
        }
        let mut response = json!({
            "description": description,
            "content": { "application/json": { "schema": reference(ERROR_SCHEMA) } },
        });
        if !headers.is_empty() {
            response["headers"] = Value::Object(headers);
        }
        out.insert(code.into(), response);
    }
    Value::Object(out)
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "Every error: the gRPC status mapped to HTTP, with its google.rpc details.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "status", "message"],
                "properties": {
                    "code": { "type": "integer", "description": "The HTTP status." },
                    "status": { "type": "string", "description": "The gRPC code name, e.g. INVALID_ARGUMENT." },
                    "message": { "type": "string" },
                    "details": {
                        "type": "array",
                        "description": "google.rpc details: ErrorInfo (its reasons are listed in \
                            polyshop.edge.ErrorInfo), BadRequest (fieldViolations), RetryInfo, …",
                        "items": {
                            "anyOf": [
                                reference(ERROR_INFO_SCHEMA),
                                {
                                    "type": "object",
                                    "required": ["@type"],
                                    "properties": { "@type": { "type": "string" } },
                                },
                            ],
                        },
                    },
                },
            },
        },
    })
}

/// `ErrorInfo.reason`s by `ErrorInfo.domain`, each with its documentation: the values of every
/// context's `ErrorReason` enum (`polyshop.<context>.v1`, domain `polyshop.<context>`), named
/// as on the wire, without the `ERROR_REASON_` prefix. The unspecified value is never sent.
pub fn error_reasons(comments: &Comments) -> BTreeMap<String, BTreeMap<String, String>> {
    let pool = polyshop_platform::contract::pool();
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let enums = pool
        .all_enums()
        .filter(|e| e.name() == "ErrorReason" && e.package_name().starts_with("polyshop."));
    for en in enums {
        let package = en.package_name();
        let domain = package.rsplit_once('.').map_or(package, |(d, _)| d);
        let reasons = out.entry(domain.to_owned()).or_default();
        for value in en.values().filter(|v| v.number() != 0) {
            let name = value.name();
            let wire = name
                .strip_prefix(polyshop::ERROR_REASON_PREFIX)
                .unwrap_or(name);
            let doc = comments
                .get(value.parent_file().name(), value.path())
                .unwrap_or_default();
            reasons.insert(wire.to_owned(), doc.replace('\n', " "));
        }
    }
    out
}

/// The ErrorInfo detail: its reason is one of those its domain declares, listed in the
/// description and, machine-readable, in `x-polyshop-error-reasons`.
fn error_info_schema(comments: &Comments) -> Value {
    let by_domain = error_reasons(comments);
    let mut text = String::from(
        "google.rpc.ErrorInfo: why the request failed, as a reason that is stable within its \
        domain (the context that answered). Each context declares its reasons in the \
        ErrorReason enum of proto/polyshop/<context>/v1/errors.proto; on the wire a reason is \
        the value's name without the ERROR_REASON_ prefix.",
    );
    let mut reasons = BTreeSet::new();
    for (domain, declared) in &by_domain {
        text.push_str(&format!("\n\n{domain}:"));
        for (reason, doc) in declared {
            text.push_str(&format!("\n- {reason}: {doc}"));
            reasons.insert(reason.clone());
        }
    }
    let domains: Vec<&String> = by_domain.keys().collect();
    json!({
        "type": "object",
        "description": text,
        "required": ["@type", "reason", "domain"],
        "properties": {
            "@type": { "const": "type.googleapis.com/google.rpc.ErrorInfo" },
            "reason": {
                "type": "string",
                "enum": reasons,
                "description": "Stable within its domain; see this schema's description.",
            },
            "domain": {
                "type": "string",
                "enum": domains,
                "description": "The context that answered: polyshop.<context>.",
            },
            "metadata": { "type": "object", "additionalProperties": { "type": "string" } },
        },
        "x-polyshop-error-reasons": by_domain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_schemas_carry_the_contracts_validation_rules() {
        let routes = RouteTable::from_pool(polyshop_platform::contract::pool()).expect("routes");
        let doc = document(&routes);
        let create = &doc["paths"]["/v1/products"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert_eq!(create["required"], json!(["name", "category", "price"]));
        let name = &create["properties"]["name"];
        assert_eq!(
            (&name["minLength"], &name["maxLength"]),
            (&json!(1), &json!(200))
        );
        assert_eq!(create["properties"]["category"]["pattern"], "^[a-z0-9-]*$");
        let list = doc["paths"]["/v1/products"]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let page_size = list
            .iter()
            .find(|p| p["name"] == "page_size")
            .expect("page_size");
        assert_eq!(page_size["schema"]["minimum"], 0);
        assert_eq!(page_size["schema"]["maximum"], 100);
        assert_eq!(page_size["required"], false);
        let money = &doc["components"]["schemas"]["polyshop.api.v1.Money"];
        assert_eq!(
            money["properties"]["currencyCode"]["pattern"], "^$|^[A-Z]{3}$",
            "an empty currency is left to the domain"
        );
        let register = &doc["paths"]["/v1/users"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert_eq!(register["properties"]["email"]["format"], "email");
        let batch = doc["paths"]["/v1/products:batchGet"]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ids = batch
            .iter()
            .find(|p| p["name"] == "product_ids")
            .expect("product_ids");
        assert_eq!(ids["schema"]["maxItems"], 100);
        assert_eq!(ids["schema"]["items"]["minLength"], 1);
    }

    #[test]
    fn every_route_is_documented_with_schemas_and_security() {
        let routes = RouteTable::from_pool(polyshop_platform::contract::pool()).expect("routes");
        let doc = document(&routes);
        assert_eq!(doc["openapi"], "3.1.0");
        for route in routes.http_routes() {
            let op = &doc["paths"][route.template.openapi_path()]
                [route.method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{} {}", route.method, route.pattern);
        }
        let get = &doc["paths"]["/v1/users/{user_id}"]["get"];
        assert_eq!(get["security"][0]["bearerAuth"], json!([]));
        assert_eq!(get["parameters"][0]["in"], "path");
        let login = &doc["paths"]["/v1/auth/login"]["post"];
        assert!(login.get("security").is_none());
        let product = &doc["components"]["schemas"]["polyshop.catalog.v1.Product"];
        assert!(
            product["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        let money = &doc["components"]["schemas"]["polyshop.api.v1.Money"];
        assert_eq!(money["properties"]["amountMinor"]["type"], "string");
        let list = &doc["paths"]["/v1/products"]["get"]["parameters"];
        assert!(
            list.as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "page_size"))
        );
    }

    #[test]
    fn the_error_info_schema_lists_every_declared_reason_with_its_domain_and_meaning() {
        let routes = RouteTable::from_pool(polyshop_platform::contract::pool()).expect("routes");
        let doc = document(&routes);
        let info = &doc["components"]["schemas"][ERROR_INFO_SCHEMA];
        let reasons = info["properties"]["reason"]["enum"]
            .as_array()
            .expect("reason enum");
        for reason in ["PRODUCT_NOT_FOUND", "ORDER_NOT_FOUND", "INVALID_ARGUMENT"] {
            assert!(reasons.iter().any(|r| r == reason), "{reason} missing");
        }
        assert!(!reasons.iter().any(|r| r == "UNSPECIFIED"));
        let inventory = &info["x-polyshop-error-reasons"]["polyshop.inventory"];
        assert!(
            inventory["PRODUCT_NOT_FOUND"]
                .as_str()
                .is_some_and(|d| d.starts_with("NOT_FOUND"))
        );
        let description = info["description"].as_str().expect("description");
        assert!(description.contains("\n- PARTICIPANT_UNAVAILABLE: UNAVAILABLE"));
        let items = &doc["components"]["schemas"][ERROR_SCHEMA]["properties"]["error"]["properties"]
            ["details"]["items"];
        assert_eq!(
            items["anyOf"][0]["$ref"],
            format!("#/components/schemas/{ERROR_INFO_SCHEMA}")
        );
    }
}
