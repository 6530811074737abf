//! When a sink's head is tried again, and when a sink is not tried at all: the backoff every
//! sink shares and the per-sink circuit breaker. Pure: time is a parameter (`now_ms`,
//! milliseconds since the epoch) and so is the randomness of the jitter; nothing here reads a
//! clock or does I/O.
//!
//! # Backoff
//!
//! The delay is procmond's restart backoff, [`crate::backoff::Backoff`], reused rather than
//! copied: the n-th failure in a row of one head waits `min * 2^(n-1)`, capped at `max`, less
//! up to a quarter of jitter (jitter only shortens, so `max` is a hard bound, and agents
//! restarted together do not retry in lockstep). [`next_attempt_ms`] turns it into the
//! absolute time `Store::outbox_retry` persists. [`SINK_BACKOFF`] is the sinks' default:
//! half a second, doubling to five minutes, so that an air-gapped site's link coming back is
//! noticed within minutes without hammering a SIEM that is restarting.
//!
//! # Circuit breaker
//!
//! | state | `allow(now)` | on success | on failure |
//! |---|---|---|---|
//! | closed, `f` consecutive failures | [`Permit::Go`] | closed, 0 | closed `f + 1`, or open until `now + cooldown` once `f + 1` reaches `failures` |
//! | open until `t` | [`Permit::Wait`] until `t` while `now < t`; at `t` it turns half-open and gives the probe | (ignored: nothing was allowed) | (ignored) |
//! | half-open, probe not yet given | [`Permit::Probe`], once | closed, 0 | open until `now + cooldown` |
//! | half-open, probe in flight | [`Permit::Wait`] (one probe at a time) | closed, 0 | open until `now + cooldown` |
//!
//! A *failure* is a batch that ended in `SinkError::Retry` (the receiver did not take it); a
//! `Reject` is an answer from a working receiver and counts as a success; a `GiveUp` stops the
//! sink and does not go through the breaker. A probe is one batch (the loop may make it a
//! batch of one). `failures` of 0 is taken as 1.

use std::time::Duration;

pub use crate::backoff::Backoff;

/// The sinks' default backoff: 500 ms, doubling, at most 5 minutes.
pub const SINK_BACKOFF: Backoff = Backoff {
    min: Duration::from_millis(500),
    max: Duration::from_secs(300),
};

/// When the head may be tried again after its failure at `now_ms`, given the failed attempts
/// it had before this one (`Pending::attempts`) and `random` in `[0, 1)` for the jitter.
/// Saturates rather than overflowing for any `now_ms`.
pub fn next_attempt_ms(backoff: &Backoff, now_ms: i64, attempts_before: u32, random: f64) -> i64 {
    let delay = backoff.delay(attempts_before.saturating_add(1), random);
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_add(delay_ms)
}

/// The breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed batches that open the breaker (0 is taken as 1).
    pub failures: u32,
    /// How long it stays open before one probe.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    /// Open after 5 failures in a row, probe after a minute.
    fn default() -> Self {
        Self {
            failures: 5,
            cooldown: Duration::from_secs(60),
        }
    }
}

/// Where a breaker stands, for the loop and `outbox status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Deliveries go; `failures` in a row so far.
    Closed {
        /// Consecutive failed batches.
        failures: u32,
    },
    /// Nothing goes until `until_ms`.
    Open {
        /// When the cooldown ends.
        until_ms: i64,
    },
    /// The cooldown ended: one probe batch goes; `probing` once it was given.
    HalfOpen {
        /// Whether the probe is in flight.
        probing: bool,
    },
}

impl BreakerState {
    /// `closed`, `open` or `half-open`, as `outbox status` prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Closed { .. } => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen { .. } => "half-open",
        }
    }
}

/// What the breaker lets the loop do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Deliver as usual.
    Go,
    /// Deliver one probe batch; report its outcome.
    Probe,
    /// Deliver nothing; ask again at `until_ms` (or when the probe's outcome is reported).
    Wait {
        /// When asking again can give a different answer; `None` while a probe is in flight.
        until_ms: Option<i64>,
    },
}

/// One sink's circuit breaker (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    config: BreakerConfig,
    state: BreakerState,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed { failures: 0 },
        }
    }

    /// Where it stands (an open breaker whose cooldown has ended still says open until the
    /// next [`Breaker::allow`]).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a batch may go at `now_ms`; turns an open breaker whose cooldown ended
    /// half-open and hands out its one probe.
    pub fn allow(&mut self, now_ms: i64) -> Permit {
        match self.state {
            BreakerState::Closed { .. } => Permit::Go,
            BreakerState::Open { until_ms } if now_ms < until_ms => Permit::Wait {
                until_ms: Some(until_ms),
            },
            BreakerState::Open { .. } | BreakerState::HalfOpen { probing: false } => {
                self.state = BreakerState::HalfOpen { probing: true };
                Permit::Probe
            }
            BreakerState::HalfOpen { probing: true } => Permit::Wait { until_ms: None },
        }
    }

    /// The probe handed out was not used (there was nothing to deliver): the next
    /// [`Breaker::allow`] hands it out again.
    pub fn release_probe(&mut self) {
        if self.state == (BreakerState::HalfOpen { probing: true }) {
            self.state = BreakerState::HalfOpen { probing: false };
        }
    }

    /// The batch was delivered (or rejected by a working receiver).
    pub fn success(&mut self) {
        if !matches!(self.state, BreakerState::Open { .. }) {
            self.state = BreakerState::Closed { failures: 0 };
        }
    }

    /// The batch failed transiently at `now_ms`.
    pub fn failure(&mut self, now_ms: i64) {
        let open = BreakerState::Open {
            until_ms: now_ms.saturating_add(
                i64::try_from(self.config.cooldown.as_millis()).unwrap_or(i64::MAX),
            ),
        };
        self.state = match self.state {
            BreakerState::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failures.max(1) {
                    open
                } else {
                    BreakerState::Closed { failures }
                }
            }
            BreakerState::HalfOpen { .. } => open,
            // Nothing was allowed while open: a stray report changes nothing.
            state @ BreakerState::Open { .. } => state,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32) -> Breaker {
        Breaker::new(BreakerConfig {
            failures,
            cooldown: Duration::from_secs(10),
        })
    }

    /// A breaker opened at `at_ms` by `failures` failures in a row.
    fn opened(at_ms: i64) -> Breaker {
        let mut b = breaker(3);
        for _ in 0..3 {
            assert_eq!(b.allow(at_ms), Permit::Go);
            b.failure(at_ms);
        }
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until_ms: at_ms + 10_000
            }
        );
        b
    }

    #[test]
    fn an_open_breaker_lets_nothing_through_before_its_cooldown() {
        let mut b = opened(1000);
        assert_eq!(
            b.allow(1000),
            Permit::Wait {
                until_ms: Some(11_000)
            }
        );
        assert_eq!(
            b.allow(10_999),
            Permit::Wait {
                until_ms: Some(11_000)
            }
        );
        assert_eq!(b.state().as_str(), "open");
        // Stray reports while open change nothing.
        b.success();
        b.failure(5000);
        assert_eq!(b.state(), BreakerState::Open { until_ms: 11_000 });
    }

    #[test]
    fn half_open_gives_one_probe_at_a_time() {
        let mut b = opened(0);
        assert_eq!(b.allow(10_000), Permit::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen { probing: true });
        assert_eq!(b.state().as_str(), "half-open");
        assert_eq!(b.allow(10_001), Permit::Wait { until_ms: None });
        assert_eq!(b.allow(99_999), Permit::Wait { until_ms: None });
    }

    #[test]
    fn a_failed_probe_opens_again_for_a_full_cooldown() {
        let mut b = opened(0);
        assert_eq!(b.allow(20_000), Permit::Probe);
        b.failure(20_500);
        assert_eq!(b.state(), BreakerState::Open { until_ms: 30_500 });
        assert_eq!(
            b.allow(30_499),
            Permit::Wait {
                until_ms: Some(30_500)
            }
        );
        assert_eq!(b.allow(30_500), Permit::Probe);
    }

    #[test]
    fn a_successful_probe_closes() {
        let mut b = opened(0);
        assert_eq!(b.allow(10_000), Permit::Probe);
        b.success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        assert_eq!(b.state().as_str(), "closed");
        assert_eq!(b.allow(10_001), Permit::Go);
        // Closed again from zero: it takes the full count to open.
        b.failure(10_001);
        b.failure(10_002);
        assert_eq!(b.state(), BreakerState::Closed { failures: 2 });
    }

    #[test]
    fn closed_opens_after_n_consecutive_failures_and_a_success_resets_the_count() {
        let mut b = breaker(3);
        b.failure(0);
        b.failure(1);
        assert_eq!(b.state(), BreakerState::Closed { failures: 2 });
        b.success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        b.failure(2);
        b.failure(3);
        assert_eq!(b.allow(3), Permit::Go);
        b.failure(4);
        assert_eq!(b.state(), BreakerState::Open { until_ms: 10_004 });
    }

    #[test]
    fn a_threshold_of_zero_is_one_and_times_saturate() {
        let mut b = Breaker::new(BreakerConfig {
            failures: 0,
            cooldown: Duration::MAX,
        });
        b.failure(i64::MAX - 1);
        assert_eq!(b.state(), BreakerState::Open { until_ms: i64::MAX });
        assert_eq!(
            b.allow(i64::MAX - 1),
            Permit::Wait {
                until_ms: Some(i64::MAX)
            }
        );
    }

    #[test]
    fn next_attempts_follow_the_shared_backoff() {
        let check = |now: i64, before: u32, random: f64, want: i64| {
            assert_eq!(
                next_attempt_ms(&SINK_BACKOFF, now, before, random),
                want,
                "now {now}, attempts before {before}, random {random}"
            );
        };
        // The first failure of a head waits `min`, then it doubles up to the cap.
        check(1000, 0, 0.0, 1500);
        check(1000, 1, 0.0, 2000);
        check(1000, 2, 0.0, 3000);
        check(0, 9, 0.0, 256_000);
        check(0, 10, 0.0, 300_000);
        check(0, u32::MAX, 0.0, 300_000);
        // Jitter takes off at most a quarter, never adds.
        check(0, 10, 0.999_999, 225_000);
        check(0, 0, 1.0, 375);
        // No overflow at the end of time.
        check(i64::MAX - 10, 5, 0.0, i64::MAX);
    }

    #[test]
    fn procmond_restarts_keep_their_delays() {
        // The procmond backoff this module reuses is unchanged (its own tests cover it in
        // full); one sample guards against a sink-driven change to it.
        let procmond = Backoff {
            min: Duration::from_millis(250),
            max: Duration::from_secs(30),
        };
        assert_eq!(procmond.delay(3, 0.0), Duration::from_millis(1000));
        assert_eq!(procmond.delay(20, 0.0), Duration::from_secs(30));
    }
}
