//! Logs and traces: one JSON object per line on stderr (or pretty for humans), filtered by
//! `Settings::log`; spans exported over OTLP/gRPC when `otlp_endpoint` is set.
//!
//! Trace context (W3C `traceparent`) crosses every hop: servers continue the caller's trace
//! ([`continue_trace`]), outgoing calls and outbox events carry the current one
//! ([`current_traceparent`], [`inject`]), and consumers continue the publisher's. Traces have
//! ids even without a collector, so log lines of one request share a `trace_id`. Without a
//! collector the ids are kept by a small layer of our own ([`Propagation`]) instead of the
//! OpenTelemetry one, which builds a full span (attributes, timings) for every request only
//! to drop it: 15% of the edge's throughput when nothing is exported.

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator as _},
    trace::{TraceContextExt as _, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::{Subscriber, span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    filter::{LevelFilter, filter_fn},
    layer::{Context, SubscriberExt},
    registry::LookupSpan,
    reload,
    util::SubscriberInitExt,
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
///
/// The log filter can change while the process runs: the runtime setting `log`
/// ([`crate::runtime_config`], `polyshop admin config set <service> log <filter>`) replaces
/// it, and deleting that key brings `settings.log` back.
pub fn init(service: &str, settings: &Settings) -> TelemetryGuard {
    let configured = EnvFilter::try_new(&settings.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(configured);
    follow_log_setting(service, settings, handle);
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
    let Some(exporter) = exporter else {
        let _ = tracing_subscriber::registry()
            .with(fmt.with_filter(filter))
            .with(Propagation.with_filter(filter_fn(is_traced_span)))
            .try_init();
        return TelemetryGuard(None);
    };
    let provider = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build();
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
        .with_filter(filter_fn(|meta| {
            is_traced_span(meta) || (meta.is_event() && *meta.level() <= LevelFilter::WARN)
        }));
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
    TelemetryGuard(Some(provider))
}

/// Applies the runtime setting `log` of process `service` through `handle`.
fn follow_log_setting(
    service: &str,
    settings: &Settings,
    handle: reload::Handle<EnvFilter, Registry>,
) {
    let configured = settings.log.clone();
    let runtime = crate::runtime_config::start(service, settings);
    runtime.on(
        "log",
        std::sync::Arc::new(move |value| {
            let text = match value {
                Some(crate::runtime_config::Value::Filter(text)) => text.as_str(),
                Some(other) => return Err(format!("{other} is not a log filter")),
                None => configured.as_str(),
            };
            let filter = EnvFilter::try_new(text).map_err(|e| format!("{text:?}: {e}"))?;
            handle.reload(filter).map_err(|e| e.to_string())?;
            tracing::info!(filter = text, "log filter changed");
            Ok(())
        }),
    );
}

/// Request and event spans are at `info`; finer spans (libraries' debug spans) are not traced.
fn is_traced_span(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span() && *meta.level() <= LevelFilter::INFO
}

/// A span's W3C trace context when no collector is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TraceIds {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl TraceIds {
    fn traceparent(self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// Gives every traced span [`TraceIds`]: its parent's trace (a new one for a root span) and an
/// id of its own.
struct Propagation;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Propagation {
    fn on_new_span(&self, _: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<TraceIds>().copied());
        let ids = TraceIds {
            // Zero is the invalid id.
            trace_id: parent.map_or_else(|| rand::random::<u128>().max(1), |p| p.trace_id),
            span_id: rand::random::<u64>().max(1),
            flags: parent.map_or(1, |p| p.flags),
        };
        span.extensions_mut().insert(ids);
    }
}

/// Runs `f` on `span`'s [`TraceIds`]; `None` when the span has none (the OpenTelemetry layer
/// is installed instead, or the span is disabled).
fn with_ids<T>(span: &tracing::Span, f: impl FnOnce(&mut TraceIds) -> T) -> Option<T> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = registry.span(id)?;
        let mut extensions = data.extensions_mut();
        extensions.get_mut::<TraceIds>().map(f)
    })
    .flatten()
}

/// The trace id and sampled flag of the caller's W3C `traceparent` in `headers`, if valid.
fn caller_trace(headers: &http::HeaderMap) -> Option<(u128, u8)> {
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    let span = cx.span();
    let caller = span.span_context();
    caller.is_valid().then(|| {
        (
            u128::from_be_bytes(caller.trace_id().to_bytes()),
            caller.trace_flags().to_u8(),
        )
    })
}

/// Makes the trace in `headers` (W3C `traceparent`), if any, the parent of `span`, and records
/// the span's trace id in its `trace_id` field. Call before the span is first entered.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let caller = caller_trace(headers);
    let continued = with_ids(span, |ids| {
        if let Some((trace_id, flags)) = caller {
            ids.trace_id = trace_id;
            ids.flags = flags;
        }
        ids.trace_id
    });
    if let Some(trace_id) = continued {
        span.record(
            "trace_id",
            tracing::field::display(format_args!("{trace_id:032x}")),
        );
        return;
    }
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
    let current = tracing::Span::current();
    if let Some(traceparent) = with_ids(&current, |ids| ids.traceparent()) {
        return Some(traceparent);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber() -> impl Subscriber + Send + Sync {
        tracing_subscriber::registry().with(Propagation.with_filter(filter_fn(is_traced_span)))
    }

    fn parse_traceparent(value: &str) -> Option<(u128, u8)> {
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", http::HeaderValue::from_str(value).ok()?);
        caller_trace(&headers)
    }

    #[test]
    fn a_traceparent_is_parsed_only_when_well_formed() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(tp),
            Some((0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736, 1))
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn spans_continue_the_callers_trace_and_children_inherit_it() {
        tracing::subscriber::with_default(subscriber(), || {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "traceparent",
                http::HeaderValue::from_static(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            );
            let span = tracing::info_span!("rpc", trace_id = tracing::field::Empty);
            continue_trace(&span, &headers);
            let (outer, inner) = span.in_scope(|| {
                let outer = current_traceparent().expect("traced");
                let inner = tracing::info_span!("step").in_scope(current_traceparent);
                (outer, inner.expect("traced"))
            });
            assert!(
                outer.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{outer}"
            );
            assert!(outer.ends_with("-01"), "{outer}");
            assert_ne!(&outer[36..52], "00f067aa0ba902b7", "a span id of its own");
            assert_eq!(inner[..36], outer[..36], "the child keeps the trace");
            assert_ne!(inner[36..52], outer[36..52], "and has its own id");
        });
    }

    #[test]
    fn a_root_span_starts_a_new_trace_and_debug_spans_are_not_traced() {
        tracing::subscriber::with_default(subscriber(), || {
            let a = tracing::info_span!("a").in_scope(current_traceparent);
            let b = tracing::info_span!("b").in_scope(current_traceparent);
            let (a, b) = (a.expect("traced"), b.expect("traced"));
            assert_ne!(a[3..35], b[3..35], "separate traces");
            assert_eq!(
                tracing::debug_span!("d").in_scope(current_traceparent),
                None
            );
        });
    }
}
