//! The run's progress: a bar on a terminal (elapsed time, cases done, how many still run, and
//! what the oldest waiting case waits for), a line per case otherwise, with a line for each
//! wait long enough to look like a hang in a CI log.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authmd_conformance::engine::CaseResult;
use authmd_conformance::waits;

/// A wait shorter than this is never printed in a log: most cases wait a few milliseconds for
/// the IdP lock.
const LOG_WAITS_AFTER: Duration = Duration::from_secs(2);

/// Reports each finished case, and ticks in between so the clock and the waits move.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    /// "<case> done; <n> running", the part of the message a finished case sets.
    status: Arc<Mutex<String>>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// A bar when `terminal`, else lines on standard error.
    pub fn start(total: usize, terminal: bool) -> Self {
        let status = Arc::new(Mutex::new(String::new()));
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{elapsed:>4} {bar:40} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        let ticker = tokio::spawn(tick(bar.clone(), status.clone()));
        Self { bar, status, ticker }
    }

    /// `result` is the `done`th of `total` cases to finish.
    pub fn case_done(&self, result: &CaseResult, done: usize, total: usize) {
        match &self.bar {
            Some(bar) => {
                let status = format!("{} done; {} running", result.name, total - done);
                *self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = status.clone();
                bar.set_message(with_waits(&status, Instant::now()));
                bar.set_position(done as u64);
            }
            None => eprintln!("[{done}/{total}] {:<12} {}", result.verdict.label(), result.name),
        }
    }

    /// Clears the bar; the summary follows.
    pub fn finish(self) {
        self.ticker.abort();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn with_waits(status: &str, now: Instant) -> String {
    match waits::summary(&waits::current(), now) {
        Some(w) if status.is_empty() => w,
        Some(w) => format!("{status}; {w}"),
        None => status.to_string(),
    }
}

/// Every 250 ms: on a terminal, the bar's clock and its waiting phrase (a long TTL wait never
/// looks like a hang); in a log, a line for each wait once it has lasted `LOG_WAITS_AFTER`.
async fn tick(bar: Option<indicatif::ProgressBar>, status: Arc<Mutex<String>>) {
    let mut logged = BTreeSet::new();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = Instant::now();
        match &bar {
            Some(bar) => {
                let status = status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                bar.set_message(with_waits(&status, now));
                bar.tick();
            }
            None => {
                for wait in waits::current() {
                    if now.saturating_duration_since(wait.since) >= LOG_WAITS_AFTER && logged.insert(wait.id) {
                        eprintln!("[waiting] {}", wait.describe(now));
                    }
                }
            }
        }
    }
}
