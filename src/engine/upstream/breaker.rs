//! A circuit breaker per upstream: after a failure, calls fail fast until a backoff passes.
//!
//! Without it, every query on a dead upstream would wait out the pool's connect timeout and
//! stall its client; with it, only the first caller (and one probe per backoff period) waits.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The first backoff after a failure; it doubles per consecutive failure up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<State>,
}

impl Breaker {
    /// `Err(last error)` while the breaker is open (fail fast); `Ok` when a call may go through.
    pub fn check(&self) -> Result<(), String> {
        let s = self.state.lock();
        match s.open_until {
            Some(t) if Instant::now() < t => Err(s.last_error.clone().unwrap_or_else(|| "unreachable".into())),
            _ => Ok(()),
        }
    }

    /// Record a failed call: open the breaker for the next backoff period.
    pub fn failure(&self, error: &str) {
        let mut s = self.state.lock();
        s.failures = s.failures.saturating_add(1);
        let factor = 1u32 << (s.failures - 1).min(8);
        let backoff = (FIRST_BACKOFF * factor).min(MAX_BACKOFF);
        s.open_until = Some(Instant::now() + backoff);
        s.last_error = Some(error.to_string());
    }

    /// Record a successful call: close the breaker.
    pub fn success(&self) {
        let mut s = self.state.lock();
        if s.failures > 0 || s.open_until.is_some() {
            *s = State::default();
        }
    }

    /// Whether the last call failed (the upstream is considered down).
    pub fn is_down(&self) -> bool {
        self.state.lock().failures > 0
    }

    pub fn last_error(&self) -> Option<String> {
        self.state.lock().last_error.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failure_and_closes_after_success() {
        let b = Breaker::default();
        assert!(b.check().is_ok());
        b.failure("connection refused");
        assert_eq!(b.check().unwrap_err(), "connection refused");
        assert!(b.is_down());
        b.success();
        assert!(b.check().is_ok());
        assert!(!b.is_down());
    }
}
