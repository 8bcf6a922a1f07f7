//! GraphQL at the edge against real user, catalog and inventory servers: proto3 JSON values
//! (int64 as strings, enum names), the access rule per field, and errors that carry the gRPC
//! code, the ErrorInfo reason and the field violations in `extensions`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{System, start};
use http::{Method, StatusCode};
use serde_json::{Value, json};

async fn graphql(
    system: &System,
    token: Option<&str>,
    query: &str,
    vars: Value,
) -> (StatusCode, Value) {
    let body = json!({"query": query, "variables": vars});
    let answer = system
        .call(Method::POST, "/graphql", token, Some(body))
        .await;
    (answer.status, answer.body)
}

#[tokio::test]
async fn queries_answer_proto3_json_values_and_errors_carry_code_reason_and_violations() {
    let system = start(|_| {}).await;
    let admin = system.admin_token().await;
    system.create_product(&admin, "Kettle", 1999).await;
    let (user_id, token) = system.sign_up("gqlalice").await;
    let (_, other) = system.sign_up("gqlbob").await;

    let q =
        "{ listProducts(pageSize: 1) { products { name prices { amountMinor currencyCode } } } }";
    let (status, answer) = graphql(&system, None, q, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let price = &answer["data"]["listProducts"]["products"][0]["prices"][0];
    assert_eq!(
        price["amountMinor"], "1999",
        "int64 travels as a string: {answer}"
    );

    let me = "query($id: String) { getUser(userId: $id) { user { username status roles } } }";
    let (_, answer) = graphql(&system, Some(&token), me, json!({"id": user_id})).await;
    assert_eq!(
        answer["data"]["getUser"]["user"]["status"], "USER_STATUS_ACTIVE",
        "{answer}"
    );
    assert_eq!(
        answer["data"]["getUser"]["user"]["roles"],
        json!(["ROLE_CUSTOMER"])
    );

    // The access rule: no token, no AUTHENTICATED field; the owner check still applies.
    let (status, answer) = graphql(&system, None, me, json!({"id": user_id})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{answer}"
    );
    let (_, answer) = graphql(&system, Some(&other), me, json!({"id": user_id})).await;
    let json = system
        .get(&format!("/v1/users/{user_id}"), Some(&other))
        .await;
    assert_eq!(
        answer["errors"][0]["extensions"]["httpStatus"],
        json.status.as_u16(),
        "as through JSON: {answer}"
    );
    assert_eq!(
        answer["errors"][0]["extensions"]["reason"],
        json.body["error"]["details"][0]["reason"]
    );

    // Contract rules: refused at the edge with the context's reason and field violations.
    let bad = "{ listProducts(pageSize: 1000) { nextPageToken } }";
    let (_, answer) = graphql(&system, None, bad, json!({})).await;
    let extensions = &answer["errors"][0]["extensions"];
    assert_eq!(extensions["code"], "INVALID_ARGUMENT", "{answer}");
    assert_eq!(extensions["reason"], "INVALID_ARGUMENT");
    assert_eq!(
        extensions["fieldViolations"][0]["field"], "page_size",
        "{answer}"
    );

    // GET serves the explorer page.
    let page = system
        .raw(Method::GET, "/graphql", &[], bytes::Bytes::new())
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    system.stop().await;
}

#[tokio::test]
async fn introspection_is_answered_unless_the_config_turns_it_off() {
    let q = "{ __schema { queryType { name } } }";
    let open = start(|_| {}).await;
    let (_, answer) = graphql(&open, None, q, json!({})).await;
    assert_eq!(
        answer["data"]["__schema"]["queryType"]["name"], "Query",
        "{answer}"
    );
    open.stop().await;
    let closed = start(|s| s.gateway.graphql_introspection = false).await;
    let (_, answer) = graphql(&closed, None, q, json!({})).await;
    assert!(answer["errors"].is_array(), "{answer}");
    closed.stop().await;
}
