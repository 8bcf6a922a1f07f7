//! Prometheus metrics of one process, served at `GET /metrics` on the service's own port (the
//! edge's too) in the OpenMetrics text format: calls served per method and status with their
//! latency, events relayed and consumed, dead letters, breaker states and bulkhead refusals.
//! The registry is `prometheus-client`'s (decision 0018: measured level with the hand-written
//! one it replaced); this module keeps the one-line recording API every crate uses, with the
//! metric named on each record. Names are fixed in code, so a metric's cardinality is bounded
//! by methods, codes and upstreams, never by ids. Callers choose label values, and a caller
//! that lets a client's input through (a path, say) would grow memory with every new value:
//! so each metric holds at most [`MAX_SERIES`] series, and any series beyond them is counted
//! in one whose every label value is `other` (the crate has no cap of its own).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock, PoisonError, RwLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::{Family, MetricConstructor},
        gauge::Gauge,
        histogram::Histogram,
    },
};

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Label sets one metric keeps; a new one beyond this is counted under `other`. The edge's
/// busiest family needs a few hundred (protocols × RPCs × statuses).
pub const MAX_SERIES: usize = 1000;

/// The label value that series beyond [`MAX_SERIES`] are folded into.
pub const OVERFLOW: &str = "other";

type Labels = Vec<(String, String)>;

#[derive(Debug, Clone)]
enum Metric {
    Counter(Family<Labels, Counter>),
    Gauge(Family<Labels, Gauge<f64, AtomicU64>>),
    Histogram(Family<Labels, Histogram, fn() -> Histogram>),
}

#[derive(Debug)]
struct Entry {
    metric: Metric,
    /// Label sets created so far, for the cap.
    series: AtomicUsize,
}

/// The metrics of this process.
#[derive(Debug, Default)]
pub struct Registry {
    /// By name, as recorded: the hot path takes the read lock only.
    families: RwLock<HashMap<&'static str, Arc<Entry>>>,
    /// The same families, registered for the encoder.
    exposition: Mutex<prometheus_client::registry::Registry>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

fn owned(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// The series `labels` names, or the overflow series once [`MAX_SERIES`] exist. Same label
/// names either way, so queries that sum over them still count the folded ones.
fn series<M, C: MetricConstructor<M>>(
    family: &Family<Labels, M, C>,
    count: &AtomicUsize,
    labels: &[(&str, &str)],
    record: impl FnOnce(&M),
) {
    let key = owned(labels);
    if let Some(existing) = family.get(&key) {
        record(&existing);
        return;
    }
    let key = if count.fetch_add(1, Ordering::Relaxed) < MAX_SERIES {
        key
    } else {
        key.into_iter()
            .map(|(n, _)| (n, OVERFLOW.to_owned()))
            .collect()
    };
    record(&family.get_or_create(&key));
}

impl Registry {
    /// The entry of `name`, registered on first use with the kind `new` makes.
    fn entry(&self, name: &'static str, help: &'static str, new: fn() -> Metric) -> Arc<Entry> {
        if let Some(entry) = self
            .families
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return entry.clone();
        }
        let mut families = self
            .families
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        families
            .entry(name)
            .or_insert_with(|| {
                let metric = new();
                // The encoder ends the help with a full stop itself.
                let help = help.strip_suffix('.').unwrap_or(help);
                let mut exposition = self
                    .exposition
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                match &metric {
                    // The encoder appends `_total` to a counter's name itself.
                    Metric::Counter(f) => exposition.register(
                        name.strip_suffix("_total").unwrap_or(name),
                        help,
                        f.clone(),
                    ),
                    Metric::Gauge(f) => exposition.register(name, help, f.clone()),
                    Metric::Histogram(f) => exposition.register(name, help, f.clone()),
                }
                Arc::new(Entry {
                    metric,
                    series: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    fn add(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], by: u64) {
        let entry = self.entry(name, help, || Metric::Counter(Family::default()));
        // A name is registered with one kind; a mismatch is a bug, not worth a panic.
        if let Metric::Counter(f) = &entry.metric {
            series(f, &entry.series, labels, |c| {
                c.inc_by(by);
            });
        }
    }

    fn set(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], value: f64) {
        let entry = self.entry(name, help, || Metric::Gauge(Family::default()));
        if let Metric::Gauge(f) = &entry.metric {
            series(f, &entry.series, labels, |g| {
                g.set(value);
            });
        }
    }

    fn observe(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], v: f64) {
        let entry = self.entry(name, help, || {
            Metric::Histogram(Family::new_with_constructor(new_histogram))
        });
        if let Metric::Histogram(f) = &entry.metric {
            series(f, &entry.series, labels, |h| h.observe(v));
        }
    }

    fn render(&self) -> String {
        let exposition = self
            .exposition
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        // Writing to a String cannot fail, and every family encodes.
        let _ = encode(&mut out, &exposition);
        out
    }
}

/// Adds one to counter `name`.
pub fn inc(name: &'static str, help: &'static str, labels: &[(&str, &str)]) {
    registry().add(name, help, labels, 1);
}

/// Adds `by` to counter `name`.
pub fn add(name: &'static str, help: &'static str, labels: &[(&str, &str)], by: u64) {
    registry().add(name, help, labels, by);
}

/// Sets gauge `name`.
pub fn set(name: &'static str, help: &'static str, labels: &[(&str, &str)], value: f64) {
    registry().set(name, help, labels, value);
}

/// Records `seconds` in histogram `name`.
pub fn observe(name: &'static str, help: &'static str, labels: &[(&str, &str)], seconds: f64) {
    registry().observe(name, help, labels, seconds);
}

/// Name of the gauge holding when the process started.
pub const PROCESS_START: &str = "polyshop_process_start_time_seconds";

/// Records now as the process's start (`polyshop_process_start_time_seconds`, Unix seconds),
/// for uptime in the governance status.
pub fn mark_start() {
    #[allow(clippy::cast_precision_loss)]
    set(
        PROCESS_START,
        "When the process started serving, in Unix seconds.",
        &[],
        crate::now_millis() as f64 / 1000.0,
    );
}

/// Every metric of this process in the OpenMetrics text format.
pub fn render() -> String {
    registry().render()
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An axum handler serving [`render`].
pub async fn handler() -> impl axum::response::IntoResponse {
    ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_histograms_render_in_the_text_format() {
        let r = Registry::default();
        r.add(
            "t_calls_total",
            "Calls.",
            &[("method", "/a"), ("code", "Ok")],
            1,
        );
        r.add(
            "t_calls_total",
            "Calls.",
            &[("method", "/a"), ("code", "Ok")],
            1,
        );
        r.set("t_open", "Open.", &[("upstream", "pay\"ment")], 1.0);
        r.observe("t_seconds", "Latency.", &[("method", "/a")], 0.003);
        r.observe("t_seconds", "Latency.", &[("method", "/a")], 7.0);
        let text = r.render();
        assert!(text.contains("# HELP t_calls Calls.\n"), "{text}");
        assert!(text.contains("# TYPE t_calls counter\n"), "{text}");
        assert!(
            text.contains("t_calls_total{method=\"/a\",code=\"Ok\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_open{upstream=\"pay\\\"ment\"} 1.0\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{le=\"0.0025\",method=\"/a\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{le=\"0.005\",method=\"/a\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{le=\"+Inf\",method=\"/a\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_count{method=\"/a\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_sum{method=\"/a\"} 7.003\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn series_beyond_the_cap_fold_into_other() {
        let r = Registry::default();
        for i in 0..MAX_SERIES + 500 {
            let path = format!("/random/{i}");
            r.add(
                "t_hits_total",
                "Hits.",
                &[("path", &path), ("code", "Ok")],
                1,
            );
            r.observe("t_hit_seconds", "Latency.", &[("path", &path)], 0.01);
        }
        let text = r.render();
        let counted = text
            .lines()
            .filter(|l| l.starts_with("t_hits_total{"))
            .count();
        assert_eq!(counted, MAX_SERIES + 1, "the cap and one overflow series");
        assert!(
            text.contains("t_hits_total{path=\"other\",code=\"other\"} 500\n"),
            "{text}"
        );
        assert!(
            text.contains("t_hit_seconds_count{path=\"other\"} 500\n"),
            "{text}"
        );
        assert!(
            !text.contains(&format!("/random/{}\"", MAX_SERIES + 1)),
            "a series past the cap"
        );
        // Series that exist keep counting after the cap is reached.
        r.add(
            "t_hits_total",
            "Hits.",
            &[("path", "/random/0"), ("code", "Ok")],
            1,
        );
        assert!(
            r.render()
                .contains("t_hits_total{path=\"/random/0\",code=\"Ok\"} 2\n")
        );
    }

    #[test]
    fn a_name_keeps_its_first_kind() {
        let r = Registry::default();
        r.add("t_x_total", "X.", &[], 1);
        r.set("t_x_total", "X.", &[], 5.0);
        assert!(r.render().contains("t_x_total 1\n"), "{}", r.render());
    }
}
