//! Spans reach a real OTLP/gRPC receiver: the collector's `TraceService` (the server the
//! `opentelemetry-proto` crate generates) runs in this test as every process's
//! `otlp_endpoint`, and one order placed through the edge is one trace, from the edge's span
//! through order, inventory and payment, the outbox's JetStream publish, to the notification
//! consumer, each span's parent a span of the same trace.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{KeyValue, any_value::Value},
};
use polyshop::order::v1::{OrderStatus, order_service_client::OrderServiceClient};
use polyshop_platform::testing::{bearer, poll_until};

use crate::harness::{System, order_request};

/// One span as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    /// The `service.name` resource attribute of the process that exported it.
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    /// Empty for a root span.
    parent_span_id: Vec<u8>,
    attributes: HashMap<String, String>,
}

impl Received {
    fn describe(&self) -> String {
        format!(
            "{}/{} {} (parent {}) {:?}",
            self.service,
            self.name,
            hex(&self.span_id),
            hex(&self.parent_span_id),
            self.attributes
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn strings(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some((kv.key.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

/// The collector's trace service, keeping every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Received>>>);

impl Receiver {
    fn spans(&self) -> Vec<Received> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| strings(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    attributes: strings(&span.attributes),
                });
            }
        }
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts the receiver on a free loopback port; its endpoint URL.
async fn start_receiver(receiver: Receiver) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    format!("http://{addr}")
}

/// Every process an order goes through, each of which must export spans of its trace.
const TRACED: [&str; 5] = ["gateway", "order", "inventory", "payment", "notification"];

/// The spans of the trace whose edge span carries `request_id`, once the trace is complete:
/// the notification consumer has handled the order's confirmation, every span's parent has
/// arrived, and so has a span of each of [`TRACED`] (each process exports on its own
/// schedule: a leaf such as payment's call can arrive after the rest).
fn complete_trace(spans: &[Received], request_id: &str) -> Option<Vec<Received>> {
    let edge = spans.iter().find(|s| {
        s.service == "gateway"
            && s.attributes.get("request_id").map(String::as_str) == Some(request_id)
    })?;
    let trace: Vec<Received> = spans
        .iter()
        .filter(|s| s.trace_id == edge.trace_id)
        .cloned()
        .collect();
    let ids: BTreeSet<&[u8]> = trace.iter().map(|s| s.span_id.as_slice()).collect();
    let notified = trace.iter().any(|s| {
        s.service == "notification"
            && s.attributes.get("subject").map(String::as_str) == Some("polyshop.order.confirmed")
    });
    let linked = trace
        .iter()
        .all(|s| s.parent_span_id.is_empty() || ids.contains(s.parent_span_id.as_slice()));
    let every_process = TRACED
        .iter()
        .all(|service| trace.iter().any(|s| s.service == *service));
    (notified && linked && every_process).then_some(trace)
}

#[tokio::test]
async fn one_order_through_the_edge_is_one_trace_at_an_otlp_receiver() {
    let receiver = Receiver::default();
    let endpoint = start_receiver(receiver.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = System::environment(dir.path());
    env.insert("POLYSHOP_OTLP_ENDPOINT".into(), endpoint);
    // The SDK's batch processor exports every 5 s by default; the test need not wait that long.
    env.insert("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into());
    let system = System::up(dir.path(), env).await;
    let token = system.signup("otlp").await;
    let product = system.first_product().await;

    // gRPC through the edge; the edge's span is found by the request id.
    let request_id = "otlp-trace-test-order";
    let mut request = bearer(order_request("otlp-order", &product.product_id, 1), &token);
    request
        .metadata_mut()
        .insert("x-request-id", request_id.parse().expect("ascii"));
    let order = OrderServiceClient::connect(system.url("GATEWAY"))
        .await
        .expect("connect to the edge")
        .create_order(request)
        .await
        .expect("create order")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(order.status, OrderStatus::Confirmed as i32);

    let trace = poll_until(Duration::from_secs(30), async || {
        complete_trace(&receiver.spans(), request_id)
    })
    .await;
    let Some(trace) = trace else {
        let seen: Vec<String> = receiver
            .spans()
            .iter()
            .map(|s| format!("{} {}", hex(&s.trace_id), s.describe()))
            .collect();
        panic!(
            "no complete trace of request {request_id}; received:\n{}",
            seen.join("\n")
        );
    };
    assert!(system.stop().await);
    let listing: Vec<String> = trace.iter().map(Received::describe).collect();
    let listing = listing.join("\n");

    // One root: the edge's span; every other span's parent is in the trace.
    let roots: Vec<&Received> = trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root span in\n{listing}");
    let edge = roots[0];
    assert_eq!(
        (edge.service.as_str(), edge.name.as_str()),
        ("gateway", "edge"),
        "{listing}"
    );
    assert_eq!(
        edge.attributes.get("request_id").map(String::as_str),
        Some(request_id)
    );

    // Every process the order went through exported spans of this trace.
    let services: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
    for service in TRACED {
        assert!(services.contains(service), "{service} in\n{listing}");
    }

    // From the notification consumer's span up to the edge: the consumer's parent is the order
    // relay's JetStream publish, whose parent is a span of the order service's request.
    let by_id: HashMap<&[u8], &Received> =
        trace.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let consumed = trace
        .iter()
        .find(|s| {
            s.service == "notification"
                && s.attributes.get("subject").map(String::as_str)
                    == Some("polyshop.order.confirmed")
        })
        .expect("the consumer's span");
    let mut chain = vec![consumed];
    while let Some(parent) = by_id.get(chain[chain.len() - 1].parent_span_id.as_slice()) {
        chain.push(parent);
    }
    let path: Vec<String> = chain
        .iter()
        .map(|s| format!("{}/{}", s.service, s.name))
        .collect();
    assert_eq!(
        chain.last().map(|s| s.span_id.as_slice()),
        Some(edge.span_id.as_slice()),
        "{path:?}"
    );
    assert_eq!(path[0], "notification/event", "{path:?}");
    assert_eq!(path[1], "order/publish", "{path:?}");
    assert_eq!(
        chain[1].attributes.get("subject").map(String::as_str),
        Some("polyshop.order.confirmed")
    );
    assert!(
        path[2..path.len() - 1].iter().any(|p| p == "order/rpc"),
        "the publish descends from the order service's request span: {path:?}"
    );

    // The saga's calls: inventory's and payment's request spans descend from the order's.
    for service in ["inventory", "payment"] {
        let rpc = trace
            .iter()
            .find(|s| s.service == service && s.name == "rpc")
            .unwrap_or_else(|| panic!("a {service} request span in\n{listing}"));
        let parent = by_id[rpc.parent_span_id.as_slice()];
        assert_eq!(parent.service, "order", "{service}'s caller in\n{listing}");
    }
    // Each service's outbox publish of this trace is a span of it.
    for (service, subject) in [
        ("inventory", "polyshop.inventory.stock.reserved"),
        ("payment", "polyshop.payment.captured"),
    ] {
        assert!(
            trace.iter().any(|s| s.service == service
                && s.name == "publish"
                && s.attributes.get("subject").map(String::as_str) == Some(subject)),
            "{service} publishes {subject} in\n{listing}"
        );
    }
}
