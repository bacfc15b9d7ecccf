//! The circuit breaker in front of an external system: after a run of
//! failures it stops sending for a while, then lets one probe through.

use std::time::{Duration, Instant};

use eddy_core::config::Duration as ConfigDuration;
use serde::Deserialize;

/// `circuit_breaker = { failure_threshold = 5, reset_timeout = "10s" }`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CircuitConfig {
    /// Consecutive failed attempts that open the circuit.
    #[serde(default = "default_threshold")]
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe is let through.
    #[serde(default = "default_reset")]
    pub reset_timeout: ConfigDuration,
}

fn default_threshold() -> u32 {
    5
}

fn default_reset() -> ConfigDuration {
    ConfigDuration::from_ms(10_000)
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            failure_threshold: default_threshold(),
            reset_timeout: default_reset(),
        }
    }
}

/// Where the breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests flow; counts consecutive failures.
    Closed {
        /// Failures since the last success.
        failures: u32,
    },
    /// Requests are held back until the instant given.
    Open {
        /// When a probe may go through.
        until: Instant,
    },
    /// One probe is allowed; its outcome closes or re-opens the circuit.
    HalfOpen,
}

/// A circuit breaker; one per sink instance.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    reset: Duration,
    state: CircuitState,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: CircuitConfig) -> CircuitBreaker {
        CircuitBreaker {
            threshold: config.failure_threshold.max(1),
            reset: Duration::from_millis(config.reset_timeout.ms().max(0) as u64),
            state: CircuitState::Closed { failures: 0 },
        }
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        self.state
    }

    /// Whether a request may be sent at `now`; moves an expired open
    /// circuit to half-open. `Err` carries how long to wait.
    pub fn allow(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state {
            CircuitState::Open { until } if now < until => Err(until - now),
            CircuitState::Open { .. } => {
                self.state = CircuitState::HalfOpen;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The request succeeded. Returns whether this closed an open circuit.
    pub fn success(&mut self) -> bool {
        let was_open = !matches!(self.state, CircuitState::Closed { .. });
        self.state = CircuitState::Closed { failures: 0 };
        was_open
    }

    /// The request failed at `now`. Returns whether this opened the circuit.
    pub fn failure(&mut self, now: Instant) -> bool {
        let (next, opened) = match self.state {
            CircuitState::Closed { failures } if failures + 1 < self.threshold => (
                CircuitState::Closed {
                    failures: failures + 1,
                },
                false,
            ),
            CircuitState::Closed { .. } => (self.open(now), true),
            CircuitState::HalfOpen | CircuitState::Open { .. } => (self.open(now), false),
        };
        self.state = next;
        opened
    }

    fn open(&self, now: Instant) -> CircuitState {
        CircuitState::Open {
            until: now + self.reset,
        }
    }

    /// Whether the circuit is open or probing.
    pub fn is_open(&self) -> bool {
        !matches!(self.state, CircuitState::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn breaker(threshold: u32, reset_ms: i64) -> CircuitBreaker {
        CircuitBreaker::new(CircuitConfig {
            failure_threshold: threshold,
            reset_timeout: ConfigDuration::from_ms(reset_ms),
        })
    }

    #[test]
    fn opens_after_threshold_then_probes_after_reset() {
        let t0 = Instant::now();
        let mut b = breaker(3, 1000);
        assert!(!b.failure(t0));
        assert!(!b.failure(t0));
        assert!(b.failure(t0), "third consecutive failure opens");
        assert_eq!(
            b.allow(t0 + Duration::from_millis(400)),
            Err(Duration::from_millis(600))
        );
        assert_eq!(b.allow(t0 + Duration::from_millis(1000)), Ok(()));
        assert_eq!(b.state(), CircuitState::HalfOpen);
        // A failed probe re-opens for another reset period.
        b.failure(t0 + Duration::from_millis(1000));
        assert!(b.allow(t0 + Duration::from_millis(1500)).is_err());
        assert!(b.allow(t0 + Duration::from_millis(2000)).is_ok());
        assert!(b.success(), "a successful probe closes the circuit");
        assert_eq!(b.state(), CircuitState::Closed { failures: 0 });
    }

    proptest! {
        /// Against a simple oracle: the circuit is open exactly when the
        /// last `threshold` outcomes since the last success were failures
        /// (or a probe after opening failed), and closed otherwise.
        #[test]
        fn open_iff_threshold_consecutive_failures(
            threshold in 1u32..6,
            outcomes in proptest::collection::vec(any::<bool>(), 0..60),
        ) {
            let t0 = Instant::now();
            let mut b = breaker(threshold, 0);
            let mut run = 0u32;
            for (i, ok) in outcomes.iter().enumerate() {
                let now = t0 + Duration::from_millis(i as u64);
                prop_assert!(b.allow(now).is_ok(), "reset 0 always lets a probe through");
                if *ok {
                    b.success();
                    run = 0;
                } else {
                    b.failure(now);
                    run += 1;
                }
                prop_assert_eq!(b.is_open(), run >= threshold);
            }
        }
    }
}
