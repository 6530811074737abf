//! The restart delay after procmond crashes: exponential, capped, with jitter.
//!
//! The delay for the n-th crash in a row is `min * 2^(n-1)`, capped at `max`, minus a random
//! part of up to a quarter of it. Jitter only ever shortens the delay, so `max` is a hard bound
//! an operator (and a test) can rely on, and two agents on one host never restart in lockstep.
//! A procmond that stayed up for [`STABLE_AFTER`] counts as recovered: its next crash starts
//! from `min` again.

use std::time::Duration;

/// How long procmond must run before its next crash is treated as the first.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// The largest share of a delay that jitter takes off.
const JITTER: f64 = 0.25;

/// A capped exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub min: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before restart number `attempt` (1 for the first crash in a row), with
    /// `random` in `[0, 1)` choosing the jitter.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        let base = self
            .min
            .saturating_mul(2_u32.saturating_pow(doublings))
            .min(self.max);
        base.mul_f64(1.0 - JITTER * random.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(attempt: u32, random: f64, want_ms: u64) {
        let backoff = Backoff {
            min: Duration::from_millis(250),
            max: Duration::from_secs(30),
        };
        assert_eq!(
            backoff.delay(attempt, random).as_millis(),
            u128::from(want_ms),
            "attempt {attempt}, random {random}"
        );
    }

    #[test]
    fn delays_double_then_stop_at_the_cap() {
        check(1, 0.0, 250);
        check(2, 0.0, 500);
        check(3, 0.0, 1000);
        check(8, 0.0, 30_000);
        check(u32::MAX, 0.0, 30_000);
        // attempt 0 is treated as the first
        check(0, 0.0, 250);
    }

    #[test]
    fn jitter_only_shortens_and_by_at_most_a_quarter() {
        check(1, 1.0, 187);
        check(3, 0.5, 875);
        check(20, 0.999_999, 22_500);
        // Out-of-range randomness cannot push a delay over the cap or below 75 %.
        check(20, 7.0, 22_500);
        check(20, -3.0, 30_000);
    }
}
