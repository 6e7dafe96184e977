//! Per-user limits enforced at run time: concurrent statements and statements per minute.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::rules::EffectiveLimits;
use crate::error::LaloError;

/// Counts running statements and recent starts per user.
#[derive(Debug, Default)]
pub struct LimitTracker {
    running: Mutex<HashMap<String, u32>>,
    recent: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Releases a concurrency slot when dropped.
#[derive(Debug)]
pub struct Slot {
    tracker: Arc<LimitTracker>,
    user: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.tracker.running.lock();
        if let Some(n) = running.get_mut(&self.user) {
            *n = n.saturating_sub(1);
        }
    }
}

impl LimitTracker {
    /// Admit one statement for `user` or refuse it (54000 rate, 53400 concurrency).
    pub fn admit(
        self: &Arc<Self>,
        user: &str,
        limits: &EffectiveLimits,
        global_rate: u32,
    ) -> Result<Slot, LaloError> {
        let rate = match (limits.rate_per_minute, global_rate) {
            (Some(r), 0) => Some(r),
            (Some(r), g) => Some(r.min(g)),
            (None, 0) => None,
            (None, g) => Some(g),
        };
        if let Some(rate) = rate {
            let mut recent = self.recent.lock();
            let q = recent.entry(user.to_string()).or_default();
            let now = Instant::now();
            while q.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60)) {
                q.pop_front();
            }
            if q.len() as u32 >= rate {
                crate::metrics::limited_statement();
                return Err(LaloError::RateLimited(format!(
                    "rate limit exceeded: at most {rate} statements per minute for user \"{user}\""
                )));
            }
            q.push_back(now);
        }
        let mut running = self.running.lock();
        let n = running.entry(user.to_string()).or_default();
        if let Some(max) = limits.max_concurrent {
            if *n >= max {
                crate::metrics::limited_statement();
                return Err(LaloError::LimitExceeded(format!(
                    "too many concurrent statements: at most {max} for user \"{user}\""
                )));
            }
        }
        *n += 1;
        crate::metrics::admitted_statement();
        Ok(Slot { tracker: self.clone(), user: user.to_string() })
    }
}
