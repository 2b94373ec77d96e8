//! What the running cases are waiting for, so a progress line can say why nothing moves (a TTL
//! let pass in real time, a JWKS cool-down, a mail that has not arrived, the IdP held by a case
//! that changes it) instead of looking hung.
//!
//! It is one registry for the process, not per run: it only feeds a display, and the CLI runs
//! one suite at a time. A wait is registered for as long as its [`Waiting`] guard lives.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One wait in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wait {
    /// Registration order: lets a caller print each wait once.
    pub id: u64,
    /// The case that waits.
    pub case: String,
    /// What it waits for, as a phrase ("the clock to pass +61 s").
    pub what: String,
    /// When it began.
    pub since: Instant,
    /// When it ends, where that is known (a sleep), rather than bounded by a timeout.
    pub until: Option<Instant>,
}

impl Wait {
    /// "case: what (3 s left)" or "case: what (for 2 s)", at `now`.
    pub fn describe(&self, now: Instant) -> String {
        match self.until {
            Some(until) => format!(
                "{}: {} ({} s left)",
                self.case,
                self.what,
                secs(until.saturating_duration_since(now))
            ),
            None => format!(
                "{}: {} (for {} s)",
                self.case,
                self.what,
                secs(now.saturating_duration_since(self.since))
            ),
        }
    }
}

/// Whole seconds, rounded up, so a wait of 0.4 s still reads "1 s left" rather than "0 s".
fn secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

static WAITS: Mutex<Vec<Wait>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Holds a wait in the registry; dropping it (the wait ended, or its case was cancelled by a
/// timeout) removes it.
#[must_use = "the wait is forgotten as soon as the guard is dropped"]
pub struct Waiting(u64);

impl Drop for Waiting {
    fn drop(&mut self) {
        let id = self.0;
        lock().retain(|w| w.id != id);
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<Wait>> {
    // A display must never take the run down: a poisoned registry is still a list.
    WAITS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Registers that `case` waits for `what`, for `length` when it is known.
pub fn begin(case: &str, what: impl Into<String>, length: Option<Duration>) -> Waiting {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let since = Instant::now();
    lock().push(Wait {
        id,
        case: case.to_string(),
        what: what.into(),
        since,
        until: length.map(|l| since + l),
    });
    Waiting(id)
}

/// The waits in progress, the one that began first first.
pub fn current() -> Vec<Wait> {
    lock().clone()
}

/// The waits of `current` as one short phrase for a progress line: the longest-running one,
/// and how many others there are.
pub fn summary(current: &[Wait], now: Instant) -> Option<String> {
    let first = current.iter().min_by_key(|w| w.since)?;
    let others = current.len() - 1;
    let mut text = format!("waiting: {}", first.describe(now));
    if others > 0 {
        text.push_str(&format!(" and {others} other{}", if others == 1 { "" } else { "s" }));
    }
    Some(text)
}

/// `lock`'s read guard; while it is not free, `case` waits for `what`.
pub async fn read<'a, T>(lock: &'a tokio::sync::RwLock<T>, case: &str, what: &str) -> tokio::sync::RwLockReadGuard<'a, T> {
    queued(lock.read(), case, what).await
}

/// `lock`'s write guard; while it is not free, `case` waits for `what`.
pub async fn write<'a, T>(lock: &'a tokio::sync::RwLock<T>, case: &str, what: &str) -> tokio::sync::RwLockWriteGuard<'a, T> {
    queued(lock.write(), case, what).await
}

/// Polls `acquire` once before the wait is said, from its place in the lock's queue (a
/// `try_read` would not queue, and the lock's fairness is what orders the key-changing cases).
async fn queued<F: std::future::Future>(acquire: F, case: &str, what: &str) -> F::Output {
    let mut acquire = std::pin::pin!(acquire);
    tokio::select! {
        biased;
        guard = &mut acquire => return guard,
        () = std::future::ready(()) => {}
    }
    let _waiting = begin(case, what, None);
    acquire.await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_listed_while_its_guard_lives_and_described_with_what_is_left() {
        let guard = begin("unit-waits-a", "the clock to pass +61 s", Some(Duration::from_secs(3)));
        let listed: Vec<_> = current().into_iter().filter(|w| w.case == "unit-waits-a").collect();
        assert_eq!(listed.len(), 1);
        let text = listed[0].describe(listed[0].since + Duration::from_millis(600));
        assert_eq!(text, "unit-waits-a: the clock to pass +61 s (3 s left)");
        drop(guard);
        assert!(current().iter().all(|w| w.case != "unit-waits-a"));
    }

    #[test]
    fn the_summary_names_the_oldest_wait_and_counts_the_others() {
        let now = Instant::now();
        let wait = |id, case: &str, ago| Wait {
            id,
            case: case.into(),
            what: "a claim mail".into(),
            since: now - Duration::from_secs(ago),
            until: None,
        };
        let waits = [wait(2, "b", 1), wait(1, "a", 4), wait(3, "c", 0)];
        assert_eq!(
            summary(&waits, now).as_deref(),
            Some("waiting: a: a claim mail (for 4 s) and 2 others")
        );
        assert_eq!(summary(&[], now), None);
    }
}
