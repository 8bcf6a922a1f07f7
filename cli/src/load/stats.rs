//! What a run measured: every call's latency and outcome in one-second buckets, errors by
//! status and by journey step, journeys, drops and orders created.

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use super::journey::Journey;

/// One second of the run.
#[derive(Clone, Debug, Default)]
pub struct Second {
    pub requests: u64,
    pub errors: u64,
    pub journeys: u64,
    pub dropped: u64,
    /// Latency of each call that started in this second, in microseconds.
    pub latencies_us: Vec<u64>,
}

/// Counts for one journey.
#[derive(Clone, Debug, Default)]
pub struct JourneyCounts {
    pub count: u64,
    pub failed: u64,
    pub latencies_us: Vec<u64>,
}

/// Everything recorded so far.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub seconds: Vec<Second>,
    /// gRPC status name (`UNAVAILABLE`, `RESOURCE_EXHAUSTED` for the edge's 429) → calls.
    pub errors_by_status: BTreeMap<String, u64>,
    /// `journey/Method` → failed calls.
    pub errors_by_step: BTreeMap<String, u64>,
    pub journeys: BTreeMap<Journey, JourneyCounts>,
    pub orders_created: u64,
}

impl Stats {
    /// Calls made.
    pub fn requests(&self) -> u64 {
        self.seconds.iter().map(|s| s.requests).sum()
    }

    /// Calls that failed.
    pub fn errors(&self) -> u64 {
        self.seconds.iter().map(|s| s.errors).sum()
    }

    /// Arrivals dropped because the in-flight cap was full.
    pub fn dropped(&self) -> u64 {
        self.seconds.iter().map(|s| s.dropped).sum()
    }

    /// Every call's latency, in microseconds.
    pub fn latencies_us(&self) -> Vec<u64> {
        self.seconds
            .iter()
            .flat_map(|s| s.latencies_us.iter().copied())
            .collect()
    }
}

/// Shared by every journey of a run; a short lock per call keeps it simple and cheap next to
/// a network round trip.
pub struct Recorder {
    start: Instant,
    stats: Mutex<Stats>,
}

impl Recorder {
    /// A recorder whose second 0 starts now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            stats: Mutex::new(Stats::default()),
        }
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Records one call of `journey` named `step` that began at `started`.
    pub fn request(
        &self,
        journey: Journey,
        step: &str,
        started: Instant,
        error: Option<tonic::Code>,
    ) {
        let latency = micros(started.elapsed());
        self.with(started, |stats, second| {
            second.requests += 1;
            second.latencies_us.push(latency);
            if let Some(code) = error {
                second.errors += 1;
                *stats.errors_by_status.entry(code_name(code)).or_default() += 1;
                let key = format!("{}/{step}", journey.name());
                *stats.errors_by_step.entry(key).or_default() += 1;
            }
        });
    }

    /// Records a finished journey.
    pub fn journey(&self, journey: Journey, started: Instant, ok: bool) {
        let latency = micros(started.elapsed());
        self.with(started, |stats, second| {
            second.journeys += 1;
            let counts = stats.journeys.entry(journey).or_default();
            counts.count += 1;
            counts.failed += u64::from(!ok);
            counts.latencies_us.push(latency);
        });
    }

    /// Records an arrival the in-flight cap turned away.
    pub fn dropped(&self) {
        self.with(Instant::now(), |_, second| second.dropped += 1);
    }

    /// Records an order the edge confirmed as created.
    pub fn order_created(&self) {
        self.with(Instant::now(), |stats, _| stats.orders_created += 1);
    }

    /// A copy of everything so far.
    pub fn snapshot(&self) -> Stats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn with(&self, at: Instant, f: impl FnOnce(&mut Stats, &mut Second)) {
        let index = usize::try_from(at.saturating_duration_since(self.start).as_secs())
            .unwrap_or(usize::MAX);
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        if stats.seconds.len() <= index {
            stats.seconds.resize_with(index + 1, Second::default);
        }
        let mut second = std::mem::take(&mut stats.seconds[index]);
        f(&mut stats, &mut second);
        stats.seconds[index] = second;
    }
}

/// The `p`th percentile (0–100) of `values` in microseconds, as milliseconds; 0 when empty.
pub fn percentile_ms(values: &mut [u64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable();
    let last = values.len() - 1;
    // Nearest rank: the data set is at most a few million calls, far below f64's precision.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((p / 100.0) * last as f64).round() as usize;
    #[allow(clippy::cast_precision_loss)]
    let ms = values[rank.min(last)] as f64 / 1000.0;
    ms
}

/// The canonical (SCREAMING_SNAKE) name of a gRPC code, as the report shows it.
pub fn code_name(code: tonic::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::{Journey, Recorder, code_name, percentile_ms};

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let mut values: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert!((percentile_ms(&mut values, 50.0) - 51.0).abs() < 1e-9);
        assert!((percentile_ms(&mut values, 99.0) - 99.0).abs() < 1e-9);
        assert!(percentile_ms(&mut [], 99.0).abs() < 1e-9);
    }

    #[test]
    fn status_names_are_the_canonical_ones() {
        assert_eq!(
            code_name(tonic::Code::ResourceExhausted),
            "RESOURCE_EXHAUSTED"
        );
        assert_eq!(code_name(tonic::Code::Ok), "OK");
    }

    #[test]
    fn errors_are_counted_by_status_and_by_journey_step() {
        let rec = Recorder::new();
        let now = Instant::now();
        rec.request(
            Journey::Checkout,
            "CreateOrder",
            now,
            Some(tonic::Code::Unavailable),
        );
        rec.request(Journey::Checkout, "GetProduct", now, None);
        rec.journey(Journey::Checkout, now, false);
        rec.order_created();
        let stats = rec.snapshot();
        assert_eq!((stats.requests(), stats.errors()), (2, 1));
        assert_eq!(stats.errors_by_status["UNAVAILABLE"], 1);
        assert_eq!(stats.errors_by_step["checkout/CreateOrder"], 1);
        assert_eq!(stats.journeys[&Journey::Checkout].failed, 1);
        assert_eq!(stats.orders_created, 1);
    }
}
