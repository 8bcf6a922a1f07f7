//! The request loops: open-loop arrivals at a rate or closed-loop users, both ramped up,
//! bounded by a cap on journeys in flight, stopped at the end of the duration plus a drain;
//! and the live progress line.

use std::{
    io::IsTerminal,
    sync::Arc,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::{sync::Semaphore, task::JoinSet};

use super::{
    journey::Shop,
    mix::Mix,
    stats::{Recorder, percentile_ms},
};

/// How the load arrives.
#[derive(Clone, Copy, Debug)]
pub enum Model {
    /// Journeys start at this many per second whatever the system's answers: queueing shows.
    Open { rate: f64 },
    /// This many shoppers each start their next journey when the last one ends.
    Closed { users: usize },
}

/// A run's shape.
#[derive(Clone, Debug)]
pub struct Plan {
    pub model: Model,
    pub duration: Duration,
    pub ramp_up: Duration,
    pub drain: Duration,
    pub max_in_flight: usize,
    pub mix: Mix,
}

/// Runs `plan` against `shop`; returns when the duration and the drain are over. Journeys
/// still in flight after the drain are abandoned (and not recorded).
pub async fn run(plan: &Plan, shop: Arc<Shop>, rec: Arc<Recorder>) {
    let progress = Progress::start(Arc::clone(&rec), plan.duration);
    let cap = Arc::new(Semaphore::new(plan.max_in_flight));
    let mut tasks = JoinSet::new();
    let start = rec.start();
    let end = start + plan.duration;
    match plan.model {
        Model::Open { rate } => {
            for k in 0u64.. {
                let at = start + arrival(k, rate, plan.ramp_up);
                if at >= end {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                // A full cap means the system is behind: count it rather than queue forever.
                let Ok(permit) = Arc::clone(&cap).try_acquire_owned() else {
                    rec.dropped();
                    continue;
                };
                let (shop, rec, journey) = (
                    Arc::clone(&shop),
                    Arc::clone(&rec),
                    plan.mix.pick(rand::random()),
                );
                tasks.spawn(async move {
                    let started = Instant::now();
                    let ok = shop.run(&rec, journey).await;
                    rec.journey(journey, started, ok);
                    drop(permit);
                });
                // Reap finished tasks so the set stays as small as what is in flight.
                while tasks.try_join_next().is_some() {}
            }
        }
        Model::Closed { users } => {
            for user in 0..users {
                let offset = plan.ramp_up.mul_f64(user as f64 / users.max(1) as f64);
                let (shop, rec, cap, mix) = (
                    Arc::clone(&shop),
                    Arc::clone(&rec),
                    Arc::clone(&cap),
                    plan.mix.clone(),
                );
                tasks.spawn(async move {
                    tokio::time::sleep_until((start + offset).into()).await;
                    while Instant::now() < end {
                        let Ok(_permit) = cap.acquire().await else {
                            return;
                        };
                        let journey = mix.pick(rand::random());
                        let started = Instant::now();
                        let ok = shop.run(&rec, journey).await;
                        rec.journey(journey, started, ok);
                    }
                });
            }
            tokio::time::sleep_until(end.into()).await;
        }
    }
    let drained = tokio::time::timeout(plan.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
    progress.finish();
}

/// When arrival `k` (from 0) is due: the rate climbs linearly from 0 over `ramp_up`, so the
/// arrivals so far are `rate·t²/2R` during the ramp and `rate·(t − R/2)` after it.
pub fn arrival(k: u64, rate: f64, ramp_up: Duration) -> Duration {
    let ramp = ramp_up.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let k = k as f64;
    let during_ramp = rate * ramp / 2.0;
    let seconds = if k < during_ramp {
        (2.0 * ramp * k / rate).sqrt()
    } else {
        ramp + (k - during_ramp) / rate
    };
    Duration::from_secs_f64(seconds)
}

/// The live display: an indicatif line on a terminal, else one plain line a second.
struct Progress {
    ticker: tokio::task::JoinHandle<()>,
    bar: ProgressBar,
}

impl Progress {
    fn start(rec: Arc<Recorder>, duration: Duration) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal {
            ProgressBar::with_draw_target(Some(duration.as_secs()), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template("{bar:20} {pos}/{len}s {msg}") {
            bar.set_style(style);
        }
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let line = status_line(&rec);
                if terminal {
                    shown.set_position(rec.start().elapsed().as_secs());
                    shown.set_message(line);
                } else {
                    eprintln!("load: {}s {line}", rec.start().elapsed().as_secs());
                }
            }
        });
        Self { ticker, bar }
    }

    fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// The last complete second: calls per second, latency, and totals of errors and drops.
fn status_line(rec: &Recorder) -> String {
    let stats = rec.snapshot();
    let last = stats.seconds.len().saturating_sub(2);
    let mut second = stats.seconds.get(last).cloned().unwrap_or_default();
    format!(
        "{} req/s, {} journeys/s, p50 {:.1} ms, p99 {:.1} ms | errors {} of {}, dropped {}",
        second.requests,
        second.journeys,
        percentile_ms(&mut second.latencies_us, 50.0),
        percentile_ms(&mut second.latencies_us, 99.0),
        stats.errors(),
        stats.requests(),
        stats.dropped(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::arrival;

    #[test]
    fn arrivals_ramp_up_then_keep_the_rate() {
        let ramp = Duration::from_secs(2);
        // 10/s ramped over 2 s: 10 arrivals during the ramp, then one every 100 ms.
        assert_eq!(arrival(0, 10.0, ramp), Duration::ZERO);
        assert!((arrival(10, 10.0, ramp).as_secs_f64() - 2.0).abs() < 1e-9);
        assert!((arrival(20, 10.0, ramp).as_secs_f64() - 3.0).abs() < 1e-9);
        assert!((arrival(5, 10.0, Duration::ZERO).as_secs_f64() - 0.5).abs() < 1e-9);
    }
}
