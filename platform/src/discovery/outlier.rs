//! Outlier ejection per instance, as Envoy does it: an instance that refuses a connection is
//! ejected at once, one that fails `consecutive_failures` calls in a row too; each ejection
//! lasts the base time doubled per ejection in a row, up to a maximum, after which the
//! instance gets traffic again and one success clears its record.

use std::time::{Duration, Instant};

/// When an instance is ejected and for how long (`discovery.outlier_*`).
#[derive(Debug, Clone)]
pub struct OutlierSettings {
    /// Failed calls in a row (answered UNAVAILABLE, or lost after sending) that eject.
    pub consecutive_failures: u32,
    /// The first ejection's length; each further one in a row doubles it.
    pub base_ejection_ms: u64,
    /// The longest ejection.
    pub max_ejection_ms: u64,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection_ms: 1000,
            max_ejection_ms: 30_000,
        }
    }
}

/// How one call to an instance ended, as far as its health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It answered (any status but UNAVAILABLE).
    Answered,
    /// No connection could be made: nothing was sent.
    Refused,
    /// Sent, then the connection was lost, or it answered UNAVAILABLE.
    Failed,
}

/// One instance's record.
#[derive(Debug, Clone, Default)]
pub struct Outlier {
    failures: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

impl Outlier {
    /// Takes in the outcome of a call that ended at `now`.
    pub fn record(&mut self, outcome: Outcome, now: Instant, settings: &OutlierSettings) {
        match outcome {
            Outcome::Answered => {
                self.failures = 0;
                // Healthy again after serving: the next ejection starts from the base time.
                if !self.is_ejected(now) {
                    self.ejections = 0;
                    self.ejected_until = None;
                }
            }
            Outcome::Refused => self.eject(now, settings),
            Outcome::Failed => {
                self.failures += 1;
                if self.failures >= settings.consecutive_failures.max(1) {
                    self.eject(now, settings);
                }
            }
        }
    }

    /// Whether it gets no traffic at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|until| now < until)
    }

    fn eject(&mut self, now: Instant, settings: &OutlierSettings) {
        // Calls in flight when it was ejected fail too: they do not lengthen the ejection.
        if self.is_ejected(now) {
            return;
        }
        self.failures = 0;
        let doubling = 2u64.saturating_pow(self.ejections.min(20));
        let ms = settings
            .base_ejection_ms
            .saturating_mul(doubling)
            .min(settings.max_ejection_ms);
        self.ejections += 1;
        self.ejected_until = Some(now + Duration::from_millis(ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OutlierSettings {
        OutlierSettings {
            consecutive_failures: 3,
            base_ejection_ms: 100,
            max_ejection_ms: 350,
        }
    }

    #[test]
    fn a_refused_connection_ejects_at_once() {
        let now = Instant::now();
        let mut o = Outlier::default();
        o.record(Outcome::Refused, now, &settings());
        assert!(o.is_ejected(now));
        assert!(!o.is_ejected(now + Duration::from_millis(100)));
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_between_them_resets_the_count() {
        let now = Instant::now();
        let mut o = Outlier::default();
        o.record(Outcome::Failed, now, &settings());
        o.record(Outcome::Failed, now, &settings());
        o.record(Outcome::Answered, now, &settings());
        o.record(Outcome::Failed, now, &settings());
        o.record(Outcome::Failed, now, &settings());
        assert!(!o.is_ejected(now));
        o.record(Outcome::Failed, now, &settings());
        assert!(o.is_ejected(now));
    }

    #[test]
    fn ejections_in_a_row_double_up_to_the_maximum_and_serving_resets_them() {
        let mut now = Instant::now();
        let mut o = Outlier::default();
        let mut lengths = Vec::new();
        for _ in 0..4 {
            o.record(Outcome::Refused, now, &settings());
            let start = now;
            while o.is_ejected(now) {
                now += Duration::from_millis(10);
            }
            lengths.push((now - start).as_millis());
        }
        assert_eq!(lengths, [100, 200, 350, 350]);
        o.record(Outcome::Answered, now, &settings());
        o.record(Outcome::Refused, now, &settings());
        assert!(!o.is_ejected(now + Duration::from_millis(100)));
    }

    #[test]
    fn failures_while_ejected_do_not_extend_the_ejection() {
        let now = Instant::now();
        let mut o = Outlier::default();
        o.record(Outcome::Refused, now, &settings());
        o.record(
            Outcome::Refused,
            now + Duration::from_millis(50),
            &settings(),
        );
        assert!(!o.is_ejected(now + Duration::from_millis(100)));
    }
}
