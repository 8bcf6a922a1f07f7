//! Trace context crosses every hop: a caller's `traceparent` reaches the events a request
//! causes, through the edge, through the order saga's calls to other services, and through
//! the outbox into JetStream.

use std::time::Duration;

use polyshop::{
    order::v1::{OrderStatus, order_service_client::OrderServiceClient},
    user::v1::{RegisterRequest, user_service_client::UserServiceClient},
};
use polyshop_platform::testing::{bearer, poll_until};

use crate::harness::{PASSWORD, System, order_request};

/// A W3C traceparent for `trace_id` (32 hex digits), sampled.
fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-00f067aa0ba902b7-01")
}

fn traced<T>(mut request: tonic::Request<T>, trace_id: &str) -> tonic::Request<T> {
    request
        .metadata_mut()
        .insert("traceparent", traceparent(trace_id).parse().expect("ascii"));
    request
}

/// Waits until `stream` holds a message on `subject` whose `traceparent` names `trace_id`.
async fn wait_for_traced_event(
    js: &async_nats::jetstream::Context,
    stream: &str,
    subject: &str,
    trace_id: &str,
) {
    // What the last complete scan saw (one the deadline cut short reports nothing).
    let mut seen = Vec::new();
    let found = poll_until(Duration::from_secs(15), async || {
        let mut scanned = Vec::new();
        let mut s = js.get_stream(stream).await.ok()?;
        let state = s.info().await.ok()?.state.clone();
        for seq in state.first_sequence..=state.last_sequence {
            let Ok(message) = s.get_raw_message(seq).await else {
                continue;
            };
            let tp = message
                .headers
                .get("traceparent")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            if message.subject.as_str() == subject && tp.contains(trace_id) {
                return Some(tp);
            }
            scanned.push(format!("{} {tp}", message.subject));
        }
        seen = scanned;
        None
    })
    .await;
    let Some(tp) = found else {
        panic!("no {subject} on {stream} in trace {trace_id}; saw {seen:?}");
    };
    assert_ne!(
        tp,
        traceparent(trace_id),
        "the event names a span of the service, not the caller's"
    );
}

#[tokio::test]
async fn a_callers_trace_reaches_the_events_it_causes_across_services() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = System::environment(dir.path());
    let gateway = env["POLYSHOP_GATEWAY_LISTEN"].clone();
    let system = System::up(dir.path(), env).await;
    let nats = system.nats_as("admin", "trace-test").await;
    let js = async_nats::jetstream::new(nats);

    // Straight to the user service.
    let register_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut users = UserServiceClient::connect(system.url("USER"))
        .await
        .expect("connect");
    users
        .register(traced(
            tonic::Request::new(RegisterRequest {
                username: "traced".into(),
                email: "traced@example.com".into(),
                password: PASSWORD.into(),
                display_name: String::new(),
            }),
            register_trace,
        ))
        .await
        .expect("register");
    wait_for_traced_event(
        &js,
        "POLYSHOP_USER",
        "polyshop.user.registered",
        register_trace,
    )
    .await;

    // Through the edge (JSON).
    let edge_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let body = r#"{"username":"edgetraced","email":"edgetraced@example.com","password":"correct horse battery"}"#;
    let status = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            &format!("http://{gateway}/v1/users"),
            "-H",
            "content-type: application/json",
            "-H",
            &format!("traceparent: {}", traceparent(edge_trace)),
            "-d",
            body,
        ])
        .output()
        .await
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&status.stdout), "200");
    wait_for_traced_event(&js, "POLYSHOP_USER", "polyshop.user.registered", edge_trace).await;

    // The order saga: order → inventory and payment, each publishing through its outbox.
    let token = system.login("traced", PASSWORD).await;
    let product = system.first_product().await;
    let order_trace = "6bf92f3577b34da6a3ce929d0e0e4738";
    let order = OrderServiceClient::connect(system.url("ORDER"))
        .await
        .expect("connect")
        .create_order(traced(
            bearer(
                order_request("traced-order", &product.product_id, 1),
                &token,
            ),
            order_trace,
        ))
        .await
        .expect("create order")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(order.status, OrderStatus::Confirmed as i32);
    for (stream, subject) in [
        ("POLYSHOP_INVENTORY", "polyshop.inventory.stock.reserved"),
        ("POLYSHOP_PAYMENT", "polyshop.payment.captured"),
        ("POLYSHOP_ORDER", "polyshop.order.confirmed"),
    ] {
        wait_for_traced_event(&js, stream, subject, order_trace).await;
    }
    assert!(system.stop().await);
}
