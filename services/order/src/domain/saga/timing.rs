//! Retry timing of a saga's transient failures, and the clock a transition is given.

/// Retry timing of transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Backoff after the first failure; doubles each time.
    pub base_ms: i64,
    /// Longest backoff.
    pub max_ms: i64,
    /// How long a step may fail in a row before a forward step rejects or a returning step
    /// is flagged.
    pub horizon_ms: i64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            base_ms: 500,
            max_ms: 30_000,
            horizon_ms: 15 * 60 * 1000,
        }
    }
}

impl Timing {
    /// The wait after `attempts` failures in a row: exponential, capped, with "equal jitter"
    /// (half fixed, half random by `jitter` in 0..=1000 ‰) so stalled sagas do not retry in
    /// lockstep.
    pub fn backoff(&self, attempts: u32, jitter: u32) -> i64 {
        let exp = self
            .base_ms
            .saturating_mul(1_i64 << attempts.saturating_sub(1).min(30))
            .min(self.max_ms);
        exp / 2 + (exp / 2) * i64::from(jitter.min(1000)) / 1000
    }
}

/// The clock and randomness a transition may use, passed in to keep it pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Epoch ms.
    pub at: i64,
    /// 0..=1000 ‰ for the backoff's jitter.
    pub jitter: u32,
}
