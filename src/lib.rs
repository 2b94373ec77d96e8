//! authmd-conformance: the conformance suite for auth.md agent registration (v0.1 profile).
//!
//! The engine ([`engine`]) checks a target over the wire as an outside client would; it never
//! imports the reference server. Cases are data ([`catalogue`], `cases/`); flows are code.
//! [`bundled`] starts the reference server, mock IdP and mailbox in-process for `run` without a
//! target: it only starts them, it shares no rules with the engine.

pub mod baseline;
pub mod bundled;
pub mod catalogue;
pub mod compare;
pub mod engine;
pub mod exit_code;
pub mod outcome;
pub mod redact;
pub mod report;
pub mod setup;
pub mod target;
pub mod template;
pub mod transport;

use std::sync::Arc;
use std::time::Instant;

use catalogue::{Case, Catalogue, Level};
use engine::{CaseResult, Harness};
use report::{Header, Report};

/// The default spec profile.
pub const PROFILE: &str = "v0.1";

/// Every profile this build can test.
pub const PROFILES: &[&str] = &[PROFILE];

/// Which cases to run.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Globs over `area/id` (or `id`); any match selects. Empty selects all.
    pub ids: Vec<String>,
    /// Areas; empty selects all.
    pub areas: Vec<String>,
    /// Levels; empty selects all.
    pub levels: Vec<Level>,
}

impl Filter {
    /// Does `case` pass the filter?
    pub fn selects(&self, case: &Case) -> bool {
        (self.ids.is_empty()
            || self
                .ids
                .iter()
                .any(|g| glob(g, &case.full_name()) || glob(g, &case.id) || case.requirements.iter().any(|r| glob(g, r))))
            && (self.areas.is_empty() || self.areas.contains(&case.area))
            && (self.levels.is_empty() || self.levels.contains(&case.level))
    }
}

/// `*` matches any run of characters, `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn rec(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => rec(&p[1..], t) || (!t.is_empty() && rec(p, &t[1..])),
            (Some(b'?'), Some(_)) => rec(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &t[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), text.as_bytes())
}

/// Progress callback: called with each finished case and the (done, total) counts.
pub type Progress<'a> = dyn Fn(&CaseResult, usize, usize) + Send + Sync + 'a;

/// Runs `cases` against the harness's target, `jobs` at a time, and builds the report.
pub async fn run(harness: Arc<Harness>, cases: Vec<Case>, progress: &Progress<'_>) -> Report {
    let started = Instant::now();
    let started_at = now_rfc3339();
    let total = cases.len();
    let results = run_cases(harness.clone(), cases, &|r, done, _| progress(r, done, total)).await;
    Report::new(header(&harness, started_at), results, total, started.elapsed().as_millis() as u64)
}

/// A finished run against the bundled stack.
pub struct BundledRun {
    /// The report (its header describes the full server).
    pub report: Report,
    /// Every secret either harness saw, for redacting the outputs.
    pub secrets: redact::Secrets,
}

/// Runs `cases` against the bundled stack with `defects` on. Cases that need a flow to be off
/// run against a second server configured that way ([`bundled::Shape`]); the rest against the
/// full one. Both servers run at once; the result is one report.
pub async fn run_bundled(
    defects: authmd_reference_server::Defects,
    variant: bundled::Variant,
    cases: Vec<Case>,
    jobs: Option<usize>,
    progress: &Progress<'_>,
) -> Result<BundledRun, bundled::BundledError> {
    let started = Instant::now();
    let started_at = now_rfc3339();
    let total = cases.len();
    let (full_cases, shaped): (Vec<Case>, Vec<Case>) = cases.into_iter().partition(|c| bundled::Shape::for_case(c) == bundled::Shape::Full);
    let secrets = redact::Secrets::default();
    let harness_for = |shape| {
        let secrets = secrets.clone();
        let defects = defects.clone();
        async move {
            let stack = bundled::start_shaped(defects, shape, variant).await?;
            let mut target = stack.target.clone();
            if let Some(jobs) = jobs {
                target.jobs = jobs.max(1);
            }
            let mut harness = Harness::with_issuers(
                target,
                stack.idp.clone(),
                Some(stack.idp2.clone()),
                Some(stack.stranger.clone()),
                Some(stack.mail.clone()),
                None,
            )
            .await
            .map_err(|e| bundled::BundledError {
                part: "harness",
                reason: e.to_string(),
            })?;
            harness.share_secrets(secrets).map_err(|e| bundled::BundledError {
                part: "harness",
                reason: e.to_string(),
            })?;
            Ok::<_, bundled::BundledError>((Arc::new(harness), stack))
        }
    };
    let done = std::sync::atomic::AtomicUsize::new(0);
    let step = |r: &CaseResult, _: usize, _: usize| progress(r, done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, total);
    let (full, _full_stack) = harness_for(bundled::Shape::Full).await?;
    let results = if shaped.is_empty() {
        run_cases(full.clone(), full_cases, &step).await
    } else {
        let (other, _other_stack) = harness_for(bundled::Shape::Restricted).await?;
        let (mut a, b) = tokio::join!(run_cases(full.clone(), full_cases, &step), run_cases(other, shaped, &step));
        a.extend(b);
        a
    };
    Ok(BundledRun {
        report: Report::new(header(&full, started_at), results, total, started.elapsed().as_millis() as u64),
        secrets,
    })
}

async fn run_cases(harness: Arc<Harness>, cases: Vec<Case>, progress: &Progress<'_>) -> Vec<CaseResult> {
    let total = cases.len();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(harness.target.jobs.max(1)));
    let mut set = tokio::task::JoinSet::new();
    let mut pending = std::collections::HashMap::new();
    for (index, case) in cases.into_iter().enumerate() {
        let harness = harness.clone();
        let semaphore = semaphore.clone();
        let meta = case.clone();
        let handle = set.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            harness.run_case(&case, index).await
        });
        pending.insert(handle.id(), meta);
    }
    let mut results = Vec::with_capacity(total);
    while let Some(joined) = set.join_next_with_id().await {
        let result = match joined {
            Ok((id, result)) => {
                pending.remove(&id);
                result
            }
            // A panic inside a case is a harness bug, and the target may have provoked it: the
            // case is still reported, as INCONCLUSIVE with the message, never dropped.
            Err(e) => {
                let Some(case) = pending.remove(&e.id()) else { continue };
                let why = if e.is_panic() {
                    let payload = e.into_panic();
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic without a message".into());
                    format!("harness error: panic: {message}")
                } else {
                    "harness error: the case's task was cancelled".into()
                };
                outcome::CaseResult::unrun(&case, outcome::Verdict::Inconclusive(why))
            }
        };
        progress(&result, results.len() + 1, total);
        results.push(result);
    }
    results
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn header(harness: &Harness, started_at: String) -> Header {
    let config_text = format!("{:?}", harness.target);
    Header {
        schema_version: report::SCHEMA_VERSION,
        suite_version: env!("CARGO_PKG_VERSION").to_string(),
        profile: harness.target.profile.clone(),
        target: harness.target.base_url.clone(),
        started_at,
        prm: capped(&harness.discovery.prm),
        metadata: capped(&harness.discovery.metadata),
        discovery_error: harness.discovery.error.clone(),
        readings: harness.target.readings.clone(),
        config_hash: redact::short_hash(&config_text),
        discovery_exchanges: harness
            .discovery_exchanges
            .iter()
            .cloned()
            .map(|mut e| {
                e.cap_for_report();
                e
            })
            .collect(),
    }
}

/// A discovery document as the report keeps it: whole up to 64 KiB, else a note of its size
/// (the discovery exchanges keep its first bytes).
fn capped(document: &serde_json::Value) -> serde_json::Value {
    let size = document.to_string().len();
    if size <= 64 * 1024 {
        document.clone()
    } else {
        serde_json::Value::String(format!("<{size} bytes, cut from the report header>"))
    }
}

/// Loads the catalogue from the crate's `cases/` directory.
pub fn default_catalogue() -> Result<Catalogue, catalogue::CatalogueError> {
    Catalogue::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cases"))
}
