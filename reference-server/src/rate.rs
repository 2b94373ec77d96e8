//! Fixed-window rate counters (RATE-01, RATE-02) that forget idle keys, so memory is bounded by
//! the addresses seen within one window, not by every address ever seen.

use std::collections::HashMap;

/// Counters keyed by (limit class, source address): when the key's window started (the
/// request clock), how many requests it counted, and when it was last hit (the server's own
/// clock).
#[derive(Debug, Default)]
pub struct RateCounters {
    counters: HashMap<String, (i64, u32, i64)>,
    /// When the last sweep ran (the server's own clock, seconds).
    swept_at: i64,
}

impl RateCounters {
    /// Counts one request for `key` at `now` (the request's clock, which the test clock may
    /// move) and `real` (the server's own); `Err(retry_after_secs)` once over `limit` within the
    /// `window`. Entries idle for a window of real time are swept out at most once per window, so
    /// the work is amortised and the map never holds more than one window's worth of keys. The
    /// sweep reads the server's own clock: one request from the future must not sweep away
    /// every other key's live window.
    pub fn hit(&mut self, key: String, limit: u32, window: i64, now: i64, real: i64) -> Result<(), u64> {
        let window = window.max(1);
        if real - self.swept_at >= window || real < self.swept_at {
            self.counters
                .retain(|_, (_, _, touched)| real - *touched < window && *touched <= real);
            self.swept_at = real;
        }
        let entry = self.counters.entry(key).or_insert((now, 0, real));
        if now - entry.0 >= window || now < entry.0 {
            *entry = (now, 0, real);
        }
        entry.1 += 1;
        entry.2 = real;
        if entry.1 > limit {
            return Err((entry.0 + window - now).max(1) as u64);
        }
        Ok(())
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_within_a_window_and_resets_after_it() {
        let mut r = RateCounters::default();
        assert!(r.hit("a".into(), 2, 60, 0, 0).is_ok());
        assert!(r.hit("a".into(), 2, 60, 1, 1).is_ok());
        assert_eq!(r.hit("a".into(), 2, 60, 2, 2), Err(58));
        assert!(r.hit("a".into(), 2, 60, 60, 60).is_ok());
    }

    #[test]
    fn a_request_from_the_future_sweeps_no_live_window() {
        // A case that advances the test clock by a month must not reset another key's count.
        let mut r = RateCounters::default();
        assert!(r.hit("a".into(), 2, 60, 100, 100).is_ok());
        assert!(r.hit("a".into(), 2, 60, 100, 100).is_ok());
        assert!(r.hit("b".into(), 2, 60, 100 + 30 * 86_400, 100).is_ok());
        assert!(r.hit("a".into(), 2, 60, 101, 101).is_err());
    }

    #[test]
    fn a_million_source_addresses_leave_memory_flat() {
        // 1,000,000 distinct addresses, 1,000 a second for 1,000 simulated seconds, with a
        // 60-second window swept once per window: at most two windows of addresses are held.
        let mut r = RateCounters::default();
        let mut peak = 0;
        for i in 0..1_000_000u32 {
            let now = i64::from(i / 1000);
            let ip = format!("ip:{}.{}.{}.{}", i >> 24, (i >> 16) & 255, (i >> 8) & 255, i & 255);
            let _ = r.hit(ip, 5, 60, now, now);
            peak = peak.max(r.len());
        }
        assert!(peak <= 121_000, "held {peak} keys at the peak");
        assert!(r.len() <= 121_000);
    }
}
