//! Prometheus metrics of one process, rendered in the text exposition format (0.0.4) at
//! `GET /metrics` on the service's own port (the edge's too): calls served per method and
//! status with their latency, events relayed and consumed, dead letters, breaker states and
//! bulkhead refusals. Label values are escaped; names are fixed in code, so a metric's
//! cardinality is bounded by methods, codes and upstreams, never by ids. Callers choose label
//! values, and a caller that lets a client's input through (a path, say) would grow memory
//! with every new value: so each metric holds at most [`MAX_SERIES`] series, and any series
//! beyond them is counted in one whose every label value is `other`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Mutex, OnceLock},
};

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Label sets one metric keeps; a new one beyond this is counted under `other`. The edge's
/// busiest family needs a few hundred (protocols × RPCs × statuses); a histogram series costs
/// about 250 bytes here and 1.6 KB in each scrape.
pub const MAX_SERIES: usize = 1000;

/// The label value that series beyond [`MAX_SERIES`] are folded into.
pub const OVERFLOW: &str = "other";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug)]
struct Family {
    kind: Kind,
    help: &'static str,
    /// Rendered label set (`a="x",b="y"`) → value.
    scalars: BTreeMap<String, f64>,
    histograms: BTreeMap<String, Histogram>,
}

/// The metrics of this process.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

fn escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn label_set(labels: &[(&str, &str)], out: &mut String) {
    out.clear();
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape(value, out);
        out.push('"');
    }
}

/// The series of `labels` in `map`, created on first use; once `map` holds [`MAX_SERIES`],
/// a new label set goes to the overflow series instead. The key is rendered into a
/// per-thread buffer, so recording into an existing series allocates nothing.
fn series<'m, V: Default>(map: &'m mut BTreeMap<String, V>, labels: &[(&str, &str)]) -> &'m mut V {
    thread_local! {
        static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    KEY.with_borrow_mut(move |key| {
        label_set(labels, key);
        if map.len() >= MAX_SERIES && !map.contains_key(key.as_str()) {
            // Same label names, so queries that sum over them still count these.
            let folded: Vec<(&str, &str)> = labels.iter().map(|(n, _)| (*n, OVERFLOW)).collect();
            label_set(&folded, key);
        }
        if map.contains_key(key.as_str()) {
            map.get_mut(key.as_str())
                .unwrap_or_else(|| unreachable!("present"))
        } else {
            map.entry(key.clone()).or_default()
        }
    })
}

impl Registry {
    fn with_family(
        &self,
        name: &'static str,
        kind: Kind,
        help: &'static str,
        f: impl FnOnce(&mut Family),
    ) {
        let mut families = self
            .families
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let family = families.entry(name).or_insert_with(|| Family {
            kind,
            help,
            scalars: BTreeMap::new(),
            histograms: BTreeMap::new(),
        });
        // A name is registered with one kind; a mismatch is a bug, not worth a panic.
        if family.kind == kind {
            f(family);
        }
    }

    fn add(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], by: f64) {
        self.with_family(name, Kind::Counter, help, |f| {
            *series(&mut f.scalars, labels) += by;
        });
    }

    fn set(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], value: f64) {
        self.with_family(name, Kind::Gauge, help, |f| {
            *series(&mut f.scalars, labels) = value;
        });
    }

    fn observe(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], v: f64) {
        self.with_family(name, Kind::Histogram, help, |f| {
            let h = series(&mut f.histograms, labels);
            for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
                if v <= bound {
                    *count += 1;
                }
            }
            h.count += 1;
            h.sum += v;
        });
    }

    fn render(&self) -> String {
        let families = self
            .families
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            for (labels, value) in &family.scalars {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
            for (labels, h) in &family.histograms {
                let sep = if labels.is_empty() { "" } else { "," };
                for (count, bound) in h.counts.iter().zip(BUCKETS) {
                    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
                }
                let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
                let braces = if labels.is_empty() {
                    String::new()
                } else {
                    format!("{{{labels}}}")
                };
                let _ = writeln!(out, "{name}_sum{braces} {}", h.sum);
                let _ = writeln!(out, "{name}_count{braces} {}", h.count);
            }
        }
        out
    }
}

/// Adds one to counter `name`.
pub fn inc(name: &'static str, help: &'static str, labels: &[(&str, &str)]) {
    registry().add(name, help, labels, 1.0);
}

/// Adds `by` to counter `name`.
pub fn add(name: &'static str, help: &'static str, labels: &[(&str, &str)], by: u64) {
    #[allow(clippy::cast_precision_loss)]
    registry().add(name, help, labels, by as f64);
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

/// Every metric of this process in the Prometheus text format.
pub fn render() -> String {
    registry().render()
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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
            1.0,
        );
        r.add(
            "t_calls_total",
            "Calls.",
            &[("method", "/a"), ("code", "Ok")],
            1.0,
        );
        r.set("t_open", "Open.", &[("upstream", "pay\"ment")], 1.0);
        r.observe("t_seconds", "Latency.", &[("method", "/a")], 0.003);
        r.observe("t_seconds", "Latency.", &[("method", "/a")], 7.0);
        let text = r.render();
        assert!(text.contains("# TYPE t_calls_total counter\n"), "{text}");
        assert!(
            text.contains("t_calls_total{method=\"/a\",code=\"Ok\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_open{upstream=\"pay\\\"ment\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{method=\"/a\",le=\"0.0025\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{method=\"/a\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{method=\"/a\",le=\"+Inf\"} 2\n"),
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
                1.0,
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
            1.0,
        );
        assert!(
            r.render()
                .contains("t_hits_total{path=\"/random/0\",code=\"Ok\"} 2\n")
        );
    }

    #[test]
    fn a_name_keeps_its_first_kind() {
        let r = Registry::default();
        r.add("t_x", "X.", &[], 1.0);
        r.set("t_x", "X.", &[], 5.0);
        assert!(r.render().contains("t_x 1\n"));
    }
}
