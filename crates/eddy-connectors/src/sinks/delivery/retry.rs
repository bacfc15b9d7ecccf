//! Retry policy for transient delivery failures: exponential backoff with a
//! bounded number of attempts.

use std::time::Duration;

use eddy_core::config::Duration as ConfigDuration;
use serde::Deserialize;

/// `retry = { attempts = 10, initial_backoff = "100ms", max_backoff = "10s" }`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per batch before it goes to dead letters; `0` retries
    /// forever (the pipeline waits for the system to come back).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Wait after the first failure; doubles after each further one.
    #[serde(default = "default_initial")]
    pub initial_backoff: ConfigDuration,
    /// Upper bound of the wait between attempts.
    #[serde(default = "default_max")]
    pub max_backoff: ConfigDuration,
}

fn default_attempts() -> u32 {
    10
}

fn default_initial() -> ConfigDuration {
    ConfigDuration::from_ms(100)
}

fn default_max() -> ConfigDuration {
    ConfigDuration::from_ms(10_000)
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: default_attempts(),
            initial_backoff: default_initial(),
            max_backoff: default_max(),
        }
    }
}

impl RetryConfig {
    /// Whether another attempt may follow attempt number `attempt` (1-based).
    pub fn may_retry(&self, attempt: u32) -> bool {
        self.attempts == 0 || attempt < self.attempts
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let initial = self.initial_backoff.ms().max(0) as u64;
        let max = self.max_backoff.ms().max(0) as u64;
        let factor = 1u64 << attempt.saturating_sub(1).min(32);
        Duration::from_millis(initial.saturating_mul(factor).min(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = RetryConfig {
            attempts: 5,
            initial_backoff: ConfigDuration::from_ms(100),
            max_backoff: ConfigDuration::from_ms(1000),
        };
        let waits: Vec<u64> = (1..=6).map(|a| r.backoff(a).as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert!(r.may_retry(4));
        assert!(!r.may_retry(5));
        let forever = RetryConfig { attempts: 0, ..r };
        assert!(forever.may_retry(1_000_000));
        assert_eq!(forever.backoff(200).as_millis(), 1000);
    }
}
