//! JSON ↔ protobuf for one HTTP route, by the proto3 JSON mapping: the request message is
//! assembled from the body (`body: "*"` or `body: "field"`), the query parameters (fields not
//! bound by path or body) and the path variables, in that order of precedence (path wins);
//! the response is the whole message or its `response_body` field, lowerCamel names out,
//! int64 as strings, enums as names. Unknown fields and malformed JSON are a 400 with the
//! reason.

use bytes::Bytes;
use percent_encoding::percent_decode_str;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
};
use serde_json::{Map, Value};

use crate::{
    errors::EdgeError,
    routes::{BodySpec, HttpRoute, field_path},
    wire_json,
};

/// Builds the request message of `route`.
///
/// # Errors
/// INVALID_ARGUMENT naming what is wrong with the body, a query parameter or a path variable.
pub fn request(
    route: &HttpRoute,
    vars: &[(String, String)],
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, EdgeError> {
    let input = route.rpc.method.input();
    let mut root = match &route.body {
        BodySpec::All if blank(body) => Map::new(),
        BodySpec::All => match parse(body)? {
            Value::Object(map) => map,
            _ => {
                return Err(EdgeError::bad_request(
                    "the request body must be a JSON object",
                ));
            }
        },
        BodySpec::Field(field) if !blank(body) => {
            let mut map = Map::new();
            map.insert(field.name().to_owned(), parse(body)?);
            map
        }
        BodySpec::Field(_) | BodySpec::None => Map::new(),
    };
    if !matches!(route.body, BodySpec::All) {
        let body_field = match &route.body {
            BodySpec::Field(f) => Some(f.name()),
            _ => None,
        };
        for (key, value) in query_pairs(query.unwrap_or_default())? {
            let fields = field_path(&input, &key)
                .map_err(|_| EdgeError::bad_request(format!("unknown query parameter `{key}`")))?;
            if fields.first().map(FieldDescriptor::name) == body_field {
                return Err(EdgeError::bad_request(format!(
                    "query parameter `{key}` is set by the request body"
                )));
            }
            if vars.iter().any(|(path, _)| same_path(path, &fields)) {
                continue;
            }
            set(&mut root, &fields, &value, true)
                .map_err(|why| EdgeError::bad_request(format!("query parameter `{key}`: {why}")))?;
        }
    }
    for (path, value) in vars {
        let fields = field_path(&input, path).map_err(EdgeError::bad_request)?;
        set(&mut root, &fields, value, false)
            .map_err(|why| EdgeError::bad_request(format!("path variable `{path}`: {why}")))?;
    }
    DynamicMessage::deserialize_with_options(input, Value::Object(root), &DeserializeOptions::new())
        .map_err(|e| EdgeError::bad_request(format!("invalid request: {e}")))
}

/// What an upstream answered: the wire bytes of a remote context, or the message of a context
/// served in this process.
pub enum Reply {
    /// An encoded response message.
    Wire(Bytes),
    /// A decoded response message.
    Message(DynamicMessage),
}

/// Serializes the response of `route`: straight from the wire bytes where [`wire_json`] can,
/// else through a decoded message.
///
/// # Errors
/// INTERNAL if the upstream's bytes do not decode as the route's response message.
pub fn response(route: &HttpRoute, reply: Reply) -> Result<Bytes, EdgeError> {
    let message = match reply {
        Reply::Message(message) => message,
        Reply::Wire(bytes) => {
            let desc = route.rpc.method.output();
            let mut out = Vec::with_capacity(2 * bytes.len() + 64);
            let written = match &route.response_body {
                None => wire_json::message(&desc, &bytes, &mut out),
                Some(field) => wire_json::field(&desc, field, &bytes, &mut out),
            };
            if written.is_some() {
                return Ok(out.into());
            }
            DynamicMessage::decode(desc, bytes).map_err(|e| {
                EdgeError::new(
                    tonic::Code::Internal,
                    format!("upstream sent an undecodable response: {e}"),
                )
            })?
        }
    };
    let options = SerializeOptions::new().skip_default_fields(false);
    let internal = |e: serde_json::Error| {
        tracing::error!(error = %e, "cannot serialize a response");
        EdgeError::new(tonic::Code::Internal, "internal error")
    };
    match &route.response_body {
        None => {
            let mut out = Vec::with_capacity(256);
            message
                .serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)
                .map_err(internal)?;
            Ok(out.into())
        }
        Some(field) => {
            let whole = message
                .serialize_with_options(serde_json::value::Serializer, &options)
                .map_err(internal)?;
            let part = whole.get(field.json_name()).cloned().unwrap_or(Value::Null);
            serde_json::to_vec(&part).map(Bytes::from).map_err(internal)
        }
    }
}

fn blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

fn parse(body: &[u8]) -> Result<Value, EdgeError> {
    serde_json::from_slice(body)
        .map_err(|e| EdgeError::bad_request(format!("malformed JSON body: {e}")))
}

fn same_path(path: &str, fields: &[FieldDescriptor]) -> bool {
    let names: Vec<&str> = fields.iter().map(FieldDescriptor::name).collect();
    path == names.join(".")
}

/// `a=1&b.c=x+y` → decoded pairs.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, EdgeError> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| EdgeError::bad_request("the query string is not valid UTF-8"))
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Sets the field at `fields` in the JSON object tree to `raw`, typed for the field's kind.
/// Both spellings of a name are replaced, so a path variable overrides the body.
fn set(
    root: &mut Map<String, Value>,
    fields: &[FieldDescriptor],
    raw: &str,
    append: bool,
) -> Result<(), String> {
    let Some((last, parents)) = fields.split_last() else {
        return Ok(());
    };
    let mut node = root;
    for field in parents {
        let existing = node
            .remove(field.json_name())
            .or_else(|| node.remove(field.name()));
        let child = node
            .entry(field.name().to_owned())
            .or_insert_with(|| existing.unwrap_or_else(|| Value::Object(Map::new())));
        node = match child {
            Value::Object(map) => map,
            _ => return Err(format!("`{}` is not an object", field.name())),
        };
    }
    if last.is_map() {
        return Err("map fields cannot be set here".into());
    }
    let value = scalar(last, raw)?;
    if last.json_name() != last.name() {
        node.remove(last.json_name());
    }
    if last.is_list() && append {
        match node
            .entry(last.name().to_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(items) => items.push(value),
            other => *other = Value::Array(vec![value]),
        }
    } else if last.is_list() {
        node.insert(last.name().to_owned(), Value::Array(vec![value]));
    } else {
        node.insert(last.name().to_owned(), value);
    }
    Ok(())
}

/// A text value in the JSON form the field's kind accepts.
fn scalar(field: &FieldDescriptor, raw: &str) -> Result<Value, String> {
    match field.kind() {
        Kind::Bool => parse_bool(raw),
        Kind::Enum(_) => Ok(raw
            .parse::<i32>()
            .map_or_else(|_| Value::String(raw.to_owned()), Value::from)),
        Kind::Message(m) => message_scalar(&m, raw),
        _ => Ok(Value::String(raw.to_owned())),
    }
}

fn parse_bool(raw: &str) -> Result<Value, String> {
    match raw {
        "true" | "1" => Ok(Value::Bool(true)),
        "false" | "0" => Ok(Value::Bool(false)),
        _ => Err(format!("`{raw}` is not a boolean")),
    }
}

/// Well-known types with a string form (Timestamp, Duration, FieldMask, wrappers) can be set
/// from text; other messages cannot.
fn message_scalar(message: &MessageDescriptor, raw: &str) -> Result<Value, String> {
    match message.full_name() {
        "google.protobuf.BoolValue" => parse_bool(raw),
        "google.protobuf.Timestamp"
        | "google.protobuf.Duration"
        | "google.protobuf.FieldMask"
        | "google.protobuf.StringValue"
        | "google.protobuf.BytesValue"
        | "google.protobuf.Int32Value"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.FloatValue"
        | "google.protobuf.DoubleValue" => Ok(Value::String(raw.to_owned())),
        name => Err(format!("a {name} cannot be set from text")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Lookup, RouteTable};
    use http::Method;
    use polyshop_platform::contract;
    use prost::Message as _;

    fn route(method: Method, path: &str) -> (RouteTable, Vec<(String, String)>) {
        let table = RouteTable::from_pool(contract::pool()).expect("routes");
        let vars = match table.lookup(&method, path) {
            Ok(Lookup::Found(_, vars)) => vars,
            other => panic!("no route for {path}: {other:?}"),
        };
        (table, vars)
    }

    fn build(
        method: Method,
        path: &str,
        query: Option<&str>,
        body: &str,
    ) -> Result<Value, EdgeError> {
        let (table, vars) = route(method.clone(), path);
        let Ok(Lookup::Found(r, _)) = table.lookup(&method, path) else {
            panic!("route");
        };
        let msg = request(r, &vars, query, body.as_bytes())?;
        Ok(serde_json::to_value(&msg).expect("json"))
    }

    #[test]
    fn path_variables_win_over_the_body() {
        let v = build(
            Method::PATCH,
            "/v1/users/u1",
            None,
            r#"{"userId":"other","displayName":"D"}"#,
        )
        .expect("valid");
        assert_eq!(v["userId"], "u1");
        assert_eq!(v["displayName"], "D");
    }

    #[test]
    fn query_parameters_fill_unbound_fields_with_their_types() {
        let v = build(
            Method::GET,
            "/v1/orders",
            Some("page_size=5&status=ORDER_STATUS_CONFIRMED&pageToken=t%20x"),
            "",
        )
        .expect("valid");
        assert_eq!(v["pageSize"], 5);
        assert_eq!(v["status"], "ORDER_STATUS_CONFIRMED");
        assert_eq!(v["pageToken"], "t x");
        let v = build(
            Method::GET,
            "/v1/products:batchGet",
            Some("product_ids=a&product_ids=b"),
            "",
        )
        .expect("valid");
        assert_eq!(v["productIds"], serde_json::json!(["a", "b"]));
        let v = build(
            Method::GET,
            "/v1/notifications",
            Some("unread_only=true"),
            "",
        )
        .expect("valid");
        assert_eq!(v["unreadOnly"], true);
    }

    #[test]
    fn body_field_binds_one_field() {
        let v = build(
            Method::POST,
            "/v1/users/u1/addresses",
            None,
            r#"{"city":"Berlin"}"#,
        )
        .expect("valid");
        assert_eq!(v["address"]["city"], "Berlin");
        assert_eq!(v["userId"], "u1");
    }

    #[test]
    fn bad_input_is_a_400_with_the_reason() {
        let unknown = build(
            Method::POST,
            "/v1/auth/login",
            None,
            r#"{"login":"a","nope":1}"#,
        )
        .expect_err("unknown field");
        assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
        let malformed = build(Method::POST, "/v1/auth/login", None, "{").expect_err("malformed");
        assert_eq!(malformed.http_status(), http::StatusCode::BAD_REQUEST);
        let query =
            build(Method::GET, "/v1/products", Some("nope=1"), "").expect_err("unknown param");
        assert_eq!(query.code(), tonic::Code::InvalidArgument);
        let int =
            build(Method::GET, "/v1/products", Some("page_size=x"), "").expect_err("not an int");
        assert_eq!(int.code(), tonic::Code::InvalidArgument);
        let array = build(Method::POST, "/v1/auth/login", None, "[1]").expect_err("not an object");
        assert_eq!(array.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn responses_use_camel_case_int64_strings_and_enum_names() {
        let (table, _) = route(Method::GET, "/v1/products/p");
        let Ok(Lookup::Found(r, _)) = table.lookup(&Method::GET, "/v1/products/p") else {
            panic!("route");
        };
        let desc = r.rpc.method.output();
        let msg = DynamicMessage::deserialize(
            desc,
            serde_json::json!({"product": {"productId": "p", "price": {"amountMinor": 1999, "currencyCode": "EUR"}}}),
        )
        .expect("message");
        let general = response(r, Reply::Message(msg.clone())).expect("json");
        let wire = response(r, Reply::Wire(msg.encode_to_vec().into())).expect("json");
        assert_eq!(
            wire, general,
            "the wire path writes what the general path writes"
        );
        let out: Value = serde_json::from_slice(&wire).expect("parse");
        assert_eq!(out["product"]["price"]["amountMinor"], "1999");
        assert_eq!(out["product"]["active"], false);
        let garbage = response(r, Reply::Wire(Bytes::from_static(b"\x0a\x05ab"))).expect_err("bad");
        assert_eq!(garbage.code(), tonic::Code::Internal);
    }
}
