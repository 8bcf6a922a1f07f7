//! The metrics registry benchmark behind docs/decisions/0018: `polyshop_platform::metrics` (once
//! a hand-written registry, now a facade over `prometheus-client`, so the rounds measure the
//! facade's own cost) against the same API built directly on `prometheus-client`, recording
//! what a served call records (`request_log`'s counter with service, method and code, and its
//! histogram with service and method) N times over 30 series, in interleaved rounds so both
//! see the same machine. No criterion: a plain loop, the per-record time of each round, and
//! the median and best of the rounds.
//!
//! ```sh
//! cargo run --release -p polyshop-platform --example metrics_bench [records] [rounds]
//! ```
//!
//! The `prometheus-client` side keeps the public API: label values arrive as `&[(&str, &str)]`
//! of any lifetime, so each record builds the owned label set a `Family` is keyed by (the
//! crate's documented `Vec<(String, String)>`), and finds the family by the metric's name under
//! a read lock (the API names the metric on each record). The series cap costs it nothing on
//! this path: only a label set the family lacks checks a series counter.

use std::{
    collections::HashMap,
    hint::black_box,
    sync::{
        PoisonError, RwLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Instant,
};

use polyshop_platform::metrics;
use prometheus_client::metrics::{counter::Counter, family::Family, histogram::Histogram};

const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const METHODS: [&str; 10] = [
    "/polyshop.order.v1.OrderService/CreateOrder",
    "/polyshop.order.v1.OrderService/GetOrder",
    "/polyshop.order.v1.OrderService/ListOrders",
    "/polyshop.order.v1.OrderService/CancelOrder",
    "/polyshop.order.v1.OrderService/GetOrderHistory",
    "/polyshop.order.v1.OrderService/UpdateOrderStatus",
    "/polyshop.catalog.v1.CatalogService/GetProduct",
    "/polyshop.catalog.v1.CatalogService/ListProducts",
    "/polyshop.inventory.v1.InventoryService/ReserveStock",
    "/polyshop.payment.v1.PaymentService/Charge",
];
const CODES: [&str; 3] = ["Ok", "NotFound", "Unavailable"];

type Labels = Vec<(String, String)>;

type Counters = Family<Labels, Counter<f64, AtomicU64>>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// The public API of `polyshop_platform::metrics` (counter and histogram), on prometheus-client:
/// a family per metric name, found by name on each record as the API names it each time.
#[derive(Default)]
struct Client {
    counters: RwLock<HashMap<&'static str, (Counters, AtomicUsize)>>,
    histograms: RwLock<HashMap<&'static str, (Histograms, AtomicUsize)>>,
}

fn owned(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// The label set to record under: `labels`, or the overflow set once `series` reached the cap.
fn capped(labels: Labels, series: &AtomicUsize) -> Labels {
    if series.fetch_add(1, Ordering::Relaxed) < metrics::MAX_SERIES {
        labels
    } else {
        labels
            .into_iter()
            .map(|(n, _)| (n, metrics::OVERFLOW.to_owned()))
            .collect()
    }
}

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

impl Client {
    fn inc(&self, name: &'static str, labels: &[(&str, &str)]) {
        let key = owned(labels);
        {
            let families = self.counters.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((family, series)) = families.get(name) {
                if let Some(c) = family.get(&key) {
                    c.inc();
                } else {
                    family.get_or_create(&capped(key, series)).inc();
                }
                return;
            }
        }
        let mut families = self
            .counters
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let (family, series) = families.entry(name).or_default();
        family.get_or_create(&capped(key, series)).inc();
    }

    fn observe(&self, name: &'static str, labels: &[(&str, &str)], v: f64) {
        let key = owned(labels);
        {
            let families = self
                .histograms
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((family, series)) = families.get(name) {
                if let Some(h) = family.get(&key) {
                    h.observe(v);
                } else {
                    family.get_or_create(&capped(key, series)).observe(v);
                }
                return;
            }
        }
        let mut families = self
            .histograms
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let (family, series) = families.entry(name).or_insert_with(|| {
            (
                Family::new_with_constructor(new_histogram as fn() -> Histogram),
                AtomicUsize::new(0),
            )
        });
        family.get_or_create(&capped(key, series)).observe(v);
    }
}

/// What a served call records, `n` times, with the labels and latency of call `i`.
fn workload(n: usize, mut record: impl FnMut(&[(&str, &str)], &[(&str, &str)], f64)) {
    for i in 0..n {
        let (method, code) = (METHODS[i % METHODS.len()], CODES[i % CODES.len()]);
        #[allow(clippy::cast_precision_loss)]
        let seconds = (i % 1000) as f64 * 0.000_1;
        record(
            &[("service", "order"), ("method", method), ("code", code)],
            &[("service", "order"), ("method", method)],
            seconds,
        );
    }
}

fn ns_per_record(n: usize, run: impl FnOnce()) -> f64 {
    let started = Instant::now();
    run();
    #[allow(clippy::cast_precision_loss)]
    let per = started.elapsed().as_nanos() as f64 / n as f64;
    per
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let client = Client::default();
    // Warm both up: every series exists before timing.
    workload(10_000, |c, h, s| {
        metrics::inc("bench_calls_total", "Calls.", c);
        metrics::observe("bench_call_seconds", "Latency.", h, s);
        client.inc("bench_calls_total", c);
        client.observe("bench_call_seconds", h, s);
    });
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    println!("{n} records (counter + histogram) per round, {rounds} rounds, interleaved");
    println!("round  polyshop metrics ns/record  prometheus-client ns/record");
    for round in 0..rounds {
        // Alternate which goes first, so neither always runs on a warmer machine.
        let time_ours = || {
            ns_per_record(n, || {
                workload(n, |c, h, s| {
                    metrics::inc("bench_calls_total", "Calls.", black_box(c));
                    metrics::observe("bench_call_seconds", "Latency.", black_box(h), s);
                });
            })
        };
        let time_theirs = || {
            ns_per_record(n, || {
                workload(n, |c, h, s| {
                    client.inc("bench_calls_total", black_box(c));
                    client.observe("bench_call_seconds", black_box(h), s);
                });
            })
        };
        let (a, b) = if round % 2 == 0 {
            let a = time_ours();
            (a, time_theirs())
        } else {
            let b = time_theirs();
            (time_ours(), b)
        };
        println!("{round:>5}  {a:>22.1}  {b:>27.1}");
        ours.push(a);
        theirs.push(b);
    }
    let best = |xs: &[f64]| xs.iter().copied().fold(f64::INFINITY, f64::min);
    let (mo, mt) = (median(ours.clone()), median(theirs.clone()));
    println!(
        "median: polyshop metrics {mo:.1} ns, prometheus-client {mt:.1} ns ({:+.0}%)",
        (mt / mo - 1.0) * 100.0
    );
    println!(
        "best:   polyshop metrics {:.1} ns, prometheus-client {:.1} ns",
        best(&ours),
        best(&theirs)
    );
    // Both recorded the same: a sanity check that neither loop was optimised away.
    let text = metrics::render();
    assert!(
        text.contains("bench_calls_total{service=\"order\""),
        "{text}"
    );
    let key = owned(&[
        ("service", "order"),
        ("method", METHODS[0]),
        ("code", CODES[0]),
    ]);
    let counters = client
        .counters
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    let (calls, _) = &counters["bench_calls_total"];
    assert!(calls.get(&key).is_some_and(|c| c.get() > 0.0));
}
