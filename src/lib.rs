//! authmd-conformance: the conformance suite for auth.md agent registration (v0.1 profile).
//!
//! The harness is the `authmd-harness` crate, re-exported here whole; it cannot depend on the
//! reference server. This package adds what may link the server: [`bundled`] starts the
//! reference server, mock IdP and mailbox in-process for `run` without a target (it only starts
//! them and shares no rules with the engine), and [`run_bundled`] runs cases against it.

pub use authmd_harness::*;

pub mod bundled;
pub mod deployment;
pub mod latency;
pub mod lint;

use std::sync::Arc;
use std::time::Instant;

use authmd_harness::catalogue::Case;
use authmd_harness::engine::{CaseResult, Harness};
use authmd_harness::report::Report;

/// A finished run against the bundled stack.
pub struct BundledRun {
    /// The report (its header describes the full server).
    pub report: Report,
    /// Every secret either harness saw, for redacting the outputs.
    pub secrets: redact::Secrets,
}

/// Starts the bundled stack in `shape` and `variant` with `defects` on, and a harness for it
/// whose secrets go to `secrets`. Keep the stack alive as long as the harness is used.
pub async fn bundled_harness(
    defects: authmd_reference_server::Defects,
    shape: bundled::Shape,
    deployment: &deployment::Deployment,
    jobs: Option<usize>,
    secrets: redact::Secrets,
) -> Result<(Arc<Harness>, bundled::Bundled), bundled::BundledError> {
    bundled_harness_configured(defects, shape, deployment, jobs, secrets, bundled::AID_DOMAIN, |_| {}).await
}

/// As [`bundled_harness`]: an AID deployment is published at `domain`, and the harness's
/// target config is edited by `edit` first (how the self-tests judge a deployment under the
/// config a new user writes, with no readings declared).
pub async fn bundled_harness_configured(
    defects: authmd_reference_server::Defects,
    shape: bundled::Shape,
    deployment: &deployment::Deployment,
    jobs: Option<usize>,
    secrets: redact::Secrets,
    reach: impl Into<bundled::Reach>,
    edit: impl FnOnce(&mut target::TargetConfig),
) -> Result<(Arc<Harness>, bundled::Bundled), bundled::BundledError> {
    let harness_error = |e: engine::HarnessError| bundled::BundledError {
        part: "harness",
        reason: e.to_string(),
    };
    let stack = bundled::start_at(defects, shape, deployment, reach).await?;
    let mut target = stack.target.clone();
    edit(&mut target);
    let parts = engine::Parts {
        ca_pem: stack.server.ca_pem().map(str::to_string),
        idp2: Some(stack.idp2.clone()),
        stranger: Some(stack.stranger.clone()),
        mail: Some(stack.mail.clone()),
        secrets,
        jobs,
        ..engine::Parts::new(target, stack.idp.clone())
    };
    let harness = Harness::build(parts).await.map_err(harness_error)?;
    Ok((Arc::new(harness), stack))
}

/// Runs `cases` against the bundled stack with `defects` on. Cases that need a flow to be off
/// run against a second server configured that way ([`bundled::Shape`]); the rest against the
/// full one. Both servers run at once; the result is one report.
pub async fn run_bundled(
    defects: authmd_reference_server::Defects,
    deployment: &deployment::Deployment,
    cases: Vec<Case>,
    jobs: Option<usize>,
    reach: impl Into<bundled::Reach>,
    progress: &Progress<'_>,
) -> Result<BundledRun, bundled::BundledError> {
    let reach = reach.into();
    let started = Instant::now();
    let started_at = now_rfc3339();
    let total = cases.len();
    let (full_cases, shaped): (Vec<Case>, Vec<Case>) = cases.into_iter().partition(|c| bundled::Shape::for_case(c) == bundled::Shape::Full);
    let secrets = redact::Secrets::default();
    let harness_for = |shape| bundled_harness_configured(defects.clone(), shape, deployment, jobs, secrets.clone(), reach.clone(), |_| {});
    let done = std::sync::atomic::AtomicUsize::new(0);
    let step = |r: &CaseResult, _: usize, _: usize| progress(r, done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, total);
    let results = if shaped.is_empty() {
        let (full, _full_stack) = harness_for(bundled::Shape::Full).await?;
        (run_cases(full.clone(), full_cases, &step).await, full)
    } else {
        // Both stacks start (and discover) at once: against a remote target discovery is a
        // chain of round trips, and the second stack's would come after the first's.
        let (full, other) = tokio::join!(harness_for(bundled::Shape::Full), harness_for(bundled::Shape::Restricted));
        let ((full, _full_stack), (other, _other_stack)) = (full?, other?);
        let (mut a, b) = tokio::join!(run_cases(full.clone(), full_cases, &step), run_cases(other, shaped, &step));
        a.extend(b);
        (a, full)
    };
    let (results, full) = results;
    Ok(BundledRun {
        report: {
            let mut report = Report::new(header(&full, started_at), results, total, started.elapsed().as_millis() as u64);
            report.ambiguities = ambiguities_of(&full.target.profile, &report.cases);
            report.requirement_texts = requirement_texts(&full.target.profile);
            report
        },
        secrets,
    })
}
