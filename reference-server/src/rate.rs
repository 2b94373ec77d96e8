//! Fixed-window rate counters (RATE-01, RATE-02) that forget idle keys, so memory is bounded by
//! the addresses seen within one window, not by every address ever seen.

use std::collections::HashMap;

/// Counters keyed by (limit class, source address).
#[derive(Debug, Default)]
pub struct RateCounters {
    counters: HashMap<String, (i64, u32)>,
    /// When the last sweep ran (the request clock, seconds).
    swept_at: i64,
}

impl RateCounters {
    /// Counts one request for `key` at `now`; `Err(retry_after_secs)` once over `limit` within
    /// the `window`. Entries whose window has ended are swept out at most once per window, so the
    /// work is amortised and the map never holds more than one window's worth of keys.
    pub fn hit(&mut self, key: String, limit: u32, window: i64, now: i64) -> Result<(), u64> {
        let window = window.max(1);
        if now - self.swept_at >= window || now < self.swept_at {
            self.counters.retain(|_, (start, _)| now - *start < window && *start <= now);
            self.swept_at = now;
        }
        let entry = self.counters.entry(key).or_insert((now, 0));
        if now - entry.0 >= window || now < entry.0 {
            *entry = (now, 0);
        }
        entry.1 += 1;
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
        assert!(r.hit("a".into(), 2, 60, 0).is_ok());
        assert!(r.hit("a".into(), 2, 60, 1).is_ok());
        assert_eq!(r.hit("a".into(), 2, 60, 2), Err(58));
        assert!(r.hit("a".into(), 2, 60, 60).is_ok());
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
            let _ = r.hit(ip, 5, 60, now);
            peak = peak.max(r.len());
        }
        assert!(peak <= 121_000, "held {peak} keys at the peak");
        assert!(r.len() <= 121_000);
    }
}
