//! A GraphQL query over the depth, breadth or cost limit is refused before any upstream call:
//! `polyshop_edge_upstream_calls_total` does not move. Alone in its file, so no other test of
//! this process moves the counter meanwhile; and a query within the limits pays its cost in
//! rate-limit tokens.
#![allow(clippy::unwrap_used)]

mod common;

use common::{System, start};
use http::{Method, StatusCode};
use serde_json::{Value, json};

fn upstream_calls() -> f64 {
    polyshop_platform::metrics::render()
        .lines()
        .filter(|l| l.starts_with("polyshop_edge_upstream_calls_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn graphql(system: &System, query: &str) -> (StatusCode, Value) {
    let body = json!({"query": query});
    let answer = system
        .call(Method::POST, "/graphql", None, Some(body))
        .await;
    (answer.status, answer.body)
}

fn aliases(n: usize, field: &str) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("a{i}: {field}")).collect();
    format!("{{ {} }}", fields.join(" "))
}

#[tokio::test]
async fn queries_over_a_limit_are_refused_before_any_upstream_call_and_cost_tokens() {
    let system = start(|s| {
        s.gateway.graphql_max_depth = 4;
        s.gateway.graphql_max_breadth = 8;
        s.gateway.graphql_max_cost = 3;
    })
    .await;
    let (status, answer) = graphql(&system, "{ listProducts { nextPageToken } }").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let before = upstream_calls();
    assert!(before >= 1.0, "the query within the limits went upstream");

    let cases = [
        (
            "{ listProducts { products { prices { amountMinor } } nextPageToken } a: getUser(userId: \"x\") { user { orders { items { product { name } } } } } }",
            "QUERY_TOO_DEEP",
        ),
        (
            &*format!("{{ listProducts {{ products {} }} }}", aliases(9, "name")),
            "QUERY_TOO_BROAD",
        ),
        (
            &*aliases(4, "listProducts { nextPageToken }"),
            "QUERY_TOO_COSTLY",
        ),
        (
            "query { ...f } fragment f on Query { a: listProducts { nextPageToken } b: listProducts { nextPageToken } c: listProducts { nextPageToken } d: listProducts { nextPageToken } }",
            "QUERY_TOO_COSTLY",
        ),
    ];
    for (query, reason) in cases {
        let (status, answer) = graphql(&system, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {answer}");
        let extensions = &answer["errors"][0]["extensions"];
        assert_eq!(extensions["code"], "RESOURCE_EXHAUSTED", "{answer}");
        assert_eq!(extensions["reason"], reason, "{query}: {answer}");
    }
    assert_eq!(upstream_calls(), before, "no refused query went upstream");

    // Three calls' worth of tokens: a bucket of five admits one such query, not two.
    system.stop().await;
    let tight = start(|s| {
        s.gateway.rate_burst = 5;
        s.gateway.rate_per_sec = 1;
    })
    .await;
    let three = aliases(3, "listProducts { nextPageToken }");
    let (status, answer) = graphql(&tight, &three).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = graphql(&tight, &three).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(
        answer["errors"][0]["extensions"]["code"],
        "RESOURCE_EXHAUSTED"
    );
    tight.stop().await;
}
