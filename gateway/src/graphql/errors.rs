//! Edge errors as GraphQL errors: the message, and in `extensions` the gRPC code, the
//! ErrorInfo reason and domain, the field violations and every `google.rpc` detail, so a
//! GraphQL client learns what a JSON client learns.

use async_graphql::{ErrorExtensionValues, Value};

use crate::errors::{EdgeError, code_name};

/// `error` as a GraphQL error.
pub fn graphql(error: &EdgeError) -> async_graphql::Error {
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code_name(error.code()));
    extensions.set("httpStatus", i32::from(error.http_status().as_u16()));
    let details = error.details_json();
    for detail in &details {
        match detail.get("@type").and_then(serde_json::Value::as_str) {
            Some(t) if t.ends_with(".ErrorInfo") => {
                for name in ["reason", "domain"] {
                    if let Some(v) = detail.get(name).and_then(serde_json::Value::as_str) {
                        extensions.set(name, v);
                    }
                }
            }
            Some(t) if t.ends_with(".BadRequest") => {
                if let Some(v) = detail.get("fieldViolations").cloned()
                    && let Ok(v) = Value::from_json(v)
                {
                    extensions.set("fieldViolations", v);
                }
            }
            _ => {}
        }
    }
    if let Ok(v) = Value::from_json(serde_json::Value::Array(details)) {
        extensions.set("details", v);
    }
    async_graphql::Error {
        message: error.message().to_owned(),
        source: None,
        extensions: Some(extensions),
    }
}

/// A refused request's body: `{"errors": [error]}`, GraphQL's shape, with no data.
pub fn body(error: &EdgeError) -> serde_json::Value {
    let e = graphql(error);
    let extensions = e
        .extensions
        .and_then(|x| serde_json::to_value(x).ok())
        .unwrap_or_default();
    serde_json::json!({"errors": [{"message": e.message, "extensions": extensions}]})
}
