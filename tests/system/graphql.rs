//! GraphQL at the edge against the whole system: a customer registers, logs in and places
//! orders through mutations (a replayed idempotency key returns the same order), then reads
//! their profile, last five orders and each item's product in one query, which the edge
//! resolves with one ListOrders and one BatchGetProducts; another customer's order is not
//! found, as through JSON; a query over the depth or cost limit is refused before any
//! upstream call.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};

use crate::harness::{PASSWORD, System};

/// `method` `url` with a JSON `body` and an optional bearer `token`: (status, JSON body).
async fn send(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let response = client
        .request(request.body(Full::new(body)).expect("a request"))
        .await
        .expect("the edge answers");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A GraphQL request to `edge`: (status, answer).
async fn graphql(edge: &str, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
    let body = json!({"query": query, "variables": variables});
    send("POST", &format!("{edge}/graphql"), token, Some(body)).await
}

/// A counter of the edge's `/metrics`: the sum of the series whose labels contain `labels`.
async fn counter(edge: &str, name: &str, labels: &str) -> f64 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client
        .get(format!("{edge}/metrics").parse().expect("a URL"))
        .await
        .expect("metrics");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const REGISTER: &str = "mutation($name: String, $email: String, $password: String) {
  register(username: $name, email: $email, password: $password) { user { userId } }
}";
const LOGIN: &str = "mutation($name: String, $password: String) {
  login(login: $name, password: $password) { accessToken }
}";
const ORDER: &str = "mutation($key: String, $items: [CreateOrderItemInput!]) {
  createOrder(idempotencyKey: $key, items: $items, paymentMethodToken: \"tok_visa\",
    shippingAddress: {recipient: \"Jane\", line1: \"Main St 1\", city: \"Berlin\",
                      postalCode: \"10115\", countryCode: \"DE\"}) {
    order { orderId status total { amountMinor currencyCode } }
  }
}";
/// The profile: the caller, their last five orders, each item's product name.
pub const PROFILE: &str = "query($me: String) {
  getUser(userId: $me) {
    user { username email orders(pageSize: 5) {
      orderId status total { amountMinor currencyCode }
      items { productId quantity product { name } }
    } }
  }
}";

/// Registers and logs `name` in through GraphQL: (user id, token).
async fn customer(edge: &str, name: &str) -> (String, String) {
    let vars = json!({"name": name, "email": format!("{name}@example.com"), "password": PASSWORD});
    let (status, answer) = graphql(edge, None, REGISTER, vars.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["data"]["register"]["user"]["userId"]
        .as_str()
        .unwrap_or_else(|| panic!("a user id: {answer}"))
        .to_owned();
    let (_, answer) = graphql(edge, None, LOGIN, vars).await;
    let token = answer["data"]["login"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("a token: {answer}"))
        .to_owned();
    (id, token)
}

#[tokio::test]
async fn graphql_answers_a_profile_in_one_request_with_batched_relations_and_the_edges_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let system = System::up(dir.path(), System::environment(dir.path())).await;
    let edge = system.url("GATEWAY");
    let (jane, token) = customer(&edge, "gqljane").await;
    let (_, other) = customer(&edge, "gqlotto").await;
    let (_, products) = send("GET", &format!("{edge}/v2/products?pageSize=3"), None, None).await;
    let ids: Vec<&str> = products["products"]
        .as_array()
        .expect("products")
        .iter()
        .filter_map(|p| p["productId"].as_str())
        .collect();
    assert!(ids.len() >= 3, "the demo catalog has products: {products}");

    // Two orders of two items each; the first one's key replayed returns the same order.
    let mut orders = Vec::new();
    for (key, items) in [("gql-1", [ids[0], ids[1]]), ("gql-2", [ids[1], ids[2]])] {
        let items: Vec<Value> = items
            .iter()
            .map(|id| json!({"productId": id, "quantity": 1}))
            .collect();
        let vars = json!({"key": key, "items": items});
        let (status, placed) = graphql(&edge, Some(&token), ORDER, vars.clone()).await;
        assert_eq!(status, 200, "{placed}");
        let order = placed["data"]["createOrder"]["order"].clone();
        assert!(order["orderId"].is_string(), "{placed}");
        assert!(
            order["total"]["amountMinor"].is_string(),
            "int64 is a string: {order}"
        );
        if key == "gql-1" {
            let (_, replayed) = graphql(&edge, Some(&token), ORDER, vars).await;
            assert_eq!(
                replayed["data"]["createOrder"]["order"]["orderId"], order["orderId"],
                "the same idempotency key, the same order: {replayed}"
            );
        }
        orders.push(order["orderId"].as_str().expect("an id").to_owned());
    }

    // The profile, in one request: one ListOrders and one BatchGetProducts behind it.
    let calls = |rpc: &'static str| {
        let edge = edge.clone();
        async move {
            counter(
                &edge,
                "polyshop_edge_graphql_rpcs_total",
                &format!("/{rpc}\""),
            )
            .await
        }
    };
    let upstream = |name: &'static str| {
        let edge = edge.clone();
        async move {
            let label = format!("upstream=\"{name}\"");
            counter(&edge, "polyshop_edge_upstream_calls_total", &label).await
        }
    };
    let before = (
        calls("ListOrders").await,
        calls("BatchGetProducts").await,
        upstream("order").await,
        upstream("catalog").await,
    );
    let (status, profile) = graphql(&edge, Some(&token), PROFILE, json!({"me": jane})).await;
    assert_eq!(status, 200, "{profile}");
    assert!(profile.get("errors").is_none(), "{profile}");
    let user = &profile["data"]["getUser"]["user"];
    assert_eq!(user["username"], "gqljane");
    let listed = user["orders"].as_array().expect("orders");
    assert_eq!(listed.len(), 2, "{profile}");
    for order in listed {
        for item in order["items"].as_array().expect("items") {
            assert!(
                item["product"]["name"].is_string(),
                "a product name: {item}"
            );
        }
    }
    let after = (
        calls("ListOrders").await,
        calls("BatchGetProducts").await,
        upstream("order").await,
        upstream("catalog").await,
    );
    assert_eq!(after.0 - before.0, 1.0, "one ListOrders");
    assert_eq!(
        after.1 - before.1,
        1.0,
        "one BatchGetProducts for every item"
    );
    assert_eq!(after.2 - before.2, 1.0, "one call to the order context");
    assert_eq!(after.3 - before.3, 1.0, "one call to the catalog context");

    // Another customer's order: not found, through GraphQL as through JSON.
    let query = "query($id: String) { getOrder(orderId: $id) { order { orderId } } }";
    let (_, theirs) = graphql(&edge, Some(&other), query, json!({"id": orders[0]})).await;
    assert_eq!(
        theirs["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{theirs}"
    );
    assert!(theirs["data"]["getOrder"].is_null(), "{theirs}");
    let (status, _) = send(
        "GET",
        &format!("{edge}/v1/orders/{}", orders[0]),
        Some(&other),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Over the depth or the cost limit: refused, and nothing went upstream.
    let total = || counter(&edge, "polyshop_edge_upstream_calls_total", "");
    let before = total().await;
    let deep = "{ getUser(userId: \"x\") { user { orders { user { orders { user { orders {
        user { orders { items { product { name } } } } } } } } } } } }";
    let (status, refused) = graphql(&edge, Some(&token), deep, json!({})).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["errors"][0]["extensions"]["reason"],
        "QUERY_TOO_DEEP"
    );
    let costly = (0..21)
        .map(|i| format!("p{i}: listProducts(pageSize: 1) {{ nextPageToken }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let (status, refused) = graphql(&edge, None, &format!("{{ {costly} }}"), json!({})).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["errors"][0]["extensions"]["reason"],
        "QUERY_TOO_COSTLY"
    );
    assert_eq!(
        total().await,
        before,
        "no upstream call for a refused query"
    );
    assert!(system.stop().await, "polyshop up exits cleanly");
}
