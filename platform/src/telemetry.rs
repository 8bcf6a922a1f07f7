//! Logs and traces: one JSON object per line on stderr (or pretty for humans), filtered by
//! `Settings::log`; spans exported over OTLP/gRPC when `otlp_endpoint` is set.
//!
//! Trace context (W3C `traceparent`) crosses every hop: servers continue the caller's trace
//! ([`continue_trace`]), outgoing calls and outbox events carry the current one
//! ([`current_traceparent`], [`inject`]), and consumers continue the publisher's. Traces have
//! ids even without a collector, so log lines of one request share a `trace_id`.

use opentelemetry::{
    propagation::Extractor,
    trace::{TraceContextExt as _, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{
    EnvFilter, Layer, filter::LevelFilter, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::config::{LogFormat, Settings};

/// Flushes exported spans when dropped.
#[derive(Debug)]
pub struct TelemetryGuard(Option<SdkTracerProvider>);

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            // Without a reachable collector shutdown reports an error; nothing more to do.
            eprintln!("telemetry: span exporter shutdown: {e}");
        }
    }
}

/// Installs the global subscriber for process `service`. Call once, inside a Tokio runtime.
pub fn init(service: &str, settings: &Settings) -> TelemetryGuard {
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let exporter = settings.otlp_endpoint.as_deref().and_then(|endpoint| {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| eprintln!("telemetry: OTLP exporter disabled: {e}"))
            .ok()
    });
    // A provider without an exporter still makes trace ids, which logs and events carry.
    let mut builder = SdkTracerProvider::builder().with_resource(
        Resource::builder()
            .with_service_name(service.to_owned())
            .build(),
    );
    if let Some(exporter) = exporter {
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // The log filter applies to log lines only: request and event spans must exist for the
    // trace to cross the process even when logs are at `warn`. Info-level log lines are not
    // copied into spans as span events (the access log would cost an allocation-heavy copy
    // per request); warnings and errors are.
    // Spans carry what their fields say. The layer's defaults would also time every poll
    // (two clock reads per enter/exit) and attach thread and source-location attributes to
    // every span: a measurable share of a small RPC's cost, and nothing a trace view needs.
    let otel = tracing_opentelemetry::layer()
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_tracer(provider.tracer(service.to_owned()))
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            let limit = if meta.is_span() {
                LevelFilter::INFO
            } else {
                LevelFilter::WARN
            };
            limit >= *meta.level()
        }));
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
    TelemetryGuard(Some(provider))
}

/// Makes the trace in `headers` (W3C `traceparent`), if any, the parent of `span`, and records
/// the span's trace id in its `trace_id` field. Call before the span is first entered.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// The W3C `traceparent` of the current span; `None` outside a trace (no telemetry installed,
/// or a span the filter disabled).
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.remove("traceparent")
}

/// Adds the current trace context to outgoing gRPC metadata.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    if let Some(value) = current_traceparent().and_then(|tp| tp.parse().ok()) {
        metadata.insert("traceparent", value);
    }
}

/// HTTP headers as a propagation carrier.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes the publisher's trace (a `traceparent` string) the parent of `span`.
pub fn continue_trace_from(span: &tracing::Span, traceparent: Option<&str>) {
    let mut headers = http::HeaderMap::new();
    if let Some(value) = traceparent.and_then(|tp| http::HeaderValue::from_str(tp).ok()) {
        headers.insert("traceparent", value);
    }
    continue_trace(span, &headers);
}
