//! The governance status at the edge (`GET /v1/admin/status`), as an operator would use it:
//! with one order placed, one poison event dead-lettered and the edge's circuit to payment
//! forced open, the document shows every instance healthy, the open breaker with its counts,
//! the dead letter, the outbox and consumer figures and the saga counts; `polyshop admin
//! status` prints it; the dead letter is listed and redriven, a flag set and cleared, over the
//! same API; a customer is refused.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use nix::sys::signal::{self, Signal};
use polyshop::order::v1::order_service_client::OrderServiceClient;
use polyshop_platform::{
    events::{HEADER_ID, HEADER_TYPE},
    testing::poll_until,
};
use serde_json::Value;

use crate::harness::{System, children_of, order_request};

/// `GET`/`POST`/`PUT`/`DELETE` on the edge with curl: (HTTP status, JSON body).
async fn call(
    edge: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut args = vec![
        "-s".to_owned(),
        "-X".to_owned(),
        method.to_owned(),
        "-H".to_owned(),
        format!("authorization: Bearer {token}"),
        "-w".to_owned(),
        "\n%{http_code}".to_owned(),
    ];
    if let Some(body) = body {
        args.extend([
            "-H".to_owned(),
            "content-type: application/json".to_owned(),
            "-d".to_owned(),
            body.to_owned(),
        ]);
    }
    args.push(format!("{edge}{path}"));
    let out = tokio::process::Command::new("curl")
        .args(&args)
        .output()
        .await
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("curl's status line");
    (
        code.trim().parse().expect("a status"),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// The status document, once `ready` says it shows what the test waits for.
async fn status_when(edge: &str, admin: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let found = poll_until(Duration::from_secs(30), async || {
        let (code, doc) = call(edge, "GET", "/v1/admin/status", admin, None).await;
        assert_eq!(code, 200, "{doc}");
        let done = ready(&doc);
        last = doc.clone();
        done.then_some(doc)
    })
    .await;
    found.unwrap_or_else(|| panic!("the status never showed {what}: {last:#}"))
}

fn rows<'a>(doc: &'a Value, section: &str) -> &'a [Value] {
    doc[section].as_array().map_or(&[], Vec::as_slice)
}

fn count(v: &Value) -> i64 {
    // int64 travels as a string in proto3 JSON.
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_i64())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_status_shows_instances_breakers_dead_letters_outbox_consumers_and_sagas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = System::environment(dir.path());
    // Two failed calls open the edge's circuit, which then stays open for the test.
    env.insert("POLYSHOP_GATEWAY_BREAKER_FAILURES".into(), "2".into());
    env.insert(
        "POLYSHOP_GATEWAY_BREAKER_COOL_DOWN_MS".into(),
        "600000".into(),
    );
    env.insert("POLYSHOP_EVENTS_GAUGE_INTERVAL_MS".into(), "200".into());
    let system = System::up(dir.path(), env).await;
    let edge = system.url("GATEWAY");
    let admin = system.login("admin", &system.admin_password()).await;
    let customer = system.signup("governed").await;

    // One order.
    let product = system.first_product().await.product_id;
    let mut request = tonic::Request::new(order_request("governance-1", &product, 1));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {customer}").parse().expect("header"),
    );
    OrderServiceClient::connect(system.url("ORDER"))
        .await
        .expect("connect")
        .create_order(request)
        .await
        .expect("order placed");

    // One poison event on a subject two durable consumers read (the order projection and the
    // notification service): each dead-letters it, so two letters.
    let js = jetstream::new(system.nats_as("order", "governance-test").await);
    let poison = polyshop_platform::new_id();
    js.send_publish(
        "polyshop.order.confirmed",
        PublishMessage::build()
            .payload(vec![0xff, 0xff, 0xff].into())
            .message_id(&poison)
            .header(HEADER_ID, poison.as_str())
            .header(HEADER_TYPE, "polyshop.order.v1.OrderConfirmed"),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");

    // The edge's circuit to payment: payment killed while `up` is paused (so it is not
    // restarted at once), two calls that cannot connect, then `up` goes on and restarts it.
    let up_pid = nix::unistd::Pid::from_raw(
        i32::try_from(system.child.id().expect("up runs")).expect("pid"),
    );
    let payment = children_of(system.child.id().expect("up runs"))
        .into_iter()
        .find(|(_, cmdline)| cmdline.contains("serve") && cmdline.contains("payment"))
        .map(|(pid, _)| pid)
        .expect("the payment process");
    signal::kill(up_pid, Signal::SIGSTOP).expect("pause up");
    signal::kill(payment, Signal::SIGKILL).expect("kill payment");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        let (code, _) = call(&edge, "GET", "/v1/payments", &customer, None).await;
        assert_eq!(code, 503, "payment is down");
    }
    signal::kill(up_pid, Signal::SIGCONT).expect("resume up");

    let doc = status_when(
        &edge,
        &admin,
        "every instance healthy and a dead letter",
        |doc| {
            let instances = rows(doc, "instances");
            let contexts: std::collections::BTreeSet<&str> = instances
                .iter()
                .filter_map(|i| i["context"].as_str())
                .collect();
            contexts.len() == 7
                && instances.iter().all(|i| i["health"] == "HEALTH_SERVING")
                && rows(doc, "deadLetters")
                    .iter()
                    .any(|d| d["stream"] == "POLYSHOP_ORDER" && count(&d["count"]) == 2)
                && doc["sagas"]["counts"]
                    .as_array()
                    .is_some_and(|c| c.iter().map(|s| count(&s["count"])).sum::<i64>() >= 1)
        },
    )
    .await;

    let breaker = rows(&doc, "breakers")
        .iter()
        .find(|b| b["caller"] == "gateway" && b["upstream"] == "payment")
        .unwrap_or_else(|| panic!("the edge's payment breaker: {doc:#}"));
    assert_eq!(breaker["state"], "BREAKER_STATE_OPEN", "{breaker}");
    assert_eq!(count(&breaker["failures"]), 2, "{breaker}");
    assert_eq!(count(&breaker["calls"]), 2, "{breaker}");
    assert!(
        rows(&doc, "outbox").iter().any(|o| o["service"] == "order"),
        "the order service's outbox: {doc:#}"
    );
    assert!(
        rows(&doc, "consumers")
            .iter()
            .any(|c| c["stream"] == "POLYSHOP_ORDER" && c["durable"] == "notification-order-events"),
        "the notification consumer of order events: {doc:#}"
    );
    assert!(
        rows(&doc, "dependencies")
            .iter()
            .any(|d| d["from"] == "order"
                && d["to"] == "inventory"
                && d["kind"] == "DEPENDENCY_KIND_CALLS"),
        "order calls inventory: {doc:#}"
    );
    assert!(
        rows(&doc, "operations")
            .iter()
            .any(|o| o["operation"] == "/polyshop.order.v1.OrderService/CreateOrder"),
        "CreateOrder's statistics: {doc:#}"
    );
    assert_eq!(
        rows(&doc, "flags").len(),
        polyshop_platform::flags::KNOWN.len()
    );
    assert!(
        rows(&doc, "config")
            .iter()
            .any(|c| c["service"] == "gateway"),
        "runtime config versions: {doc:#}"
    );
    assert!(rows(&doc, "degraded").is_empty(), "{doc:#}");

    // The CLI prints the same document as tables.
    let printed = system.polyshop(&["admin", "status"]).await;
    assert!(printed.contains("Circuit breakers"), "{printed}");
    assert!(printed.contains("OPEN"), "{printed}");
    assert!(printed.contains("POLYSHOP_ORDER"), "{printed}");

    // The operator's actions over the same API.
    let (code, letters) = call(&edge, "GET", "/v1/admin/dead-letters", &admin, None).await;
    assert_eq!(code, 200, "{letters}");
    let letter = &rows(&letters, "deadLetters")[0];
    assert_eq!(letter["eventId"], poison.as_str());
    let (code, redriven) = call(
        &edge,
        "POST",
        "/v1/admin/dead-letters:redrive",
        &admin,
        Some(&format!(
            "{{\"sequence\":\"{}\"}}",
            count(&letter["sequence"])
        )),
    )
    .await;
    assert_eq!((code, count(&redriven["redriven"])), (200, 1), "{redriven}");
    let (code, flag) = call(
        &edge,
        "PUT",
        "/v1/admin/flags/notification_email",
        &admin,
        Some("{\"enabled\":false}"),
    )
    .await;
    assert_eq!(code, 200, "{flag}");
    // proto3 JSON leaves `false` out.
    assert!(
        !flag["flag"]["enabled"].as_bool().unwrap_or(false),
        "{flag}"
    );
    assert_eq!(flag["flag"]["overridden"], true);
    // It takes effect: the order and notification processes report the new value in force.
    status_when(
        &edge,
        &admin,
        "notification_email off in force at every instance that reads it",
        |doc| {
            rows(doc, "flags").iter().any(|f| {
                f["name"] == "notification_email"
                    && !f["enabled"].as_bool().unwrap_or(false)
                    && count(&f["instancesReporting"]) >= 2
                    && f["instancesInForce"] == f["instancesReporting"]
            })
        },
    )
    .await;
    let (code, flag) = call(
        &edge,
        "DELETE",
        "/v1/admin/flags/notification_email",
        &admin,
        None,
    )
    .await;
    assert_eq!(code, 200, "{flag}");
    assert!(
        !flag["flag"]["overridden"].as_bool().unwrap_or(false),
        "no override, the configured value: {flag}"
    );
    let (code, unknown) = call(
        &edge,
        "PUT",
        "/v1/admin/flags/no_such_flag",
        &admin,
        Some("{\"enabled\":true}"),
    )
    .await;
    assert_eq!(code, 404, "{unknown}");

    // Customers are refused.
    let (code, _) = call(&edge, "GET", "/v1/admin/status", &customer, None).await;
    assert_eq!(code, 403);
    assert!(system.stop().await);
}
