//! authmd-harness: the harness of the auth.md conformance suite (v0.1 profile).
//!
//! The engine ([`engine`]) checks a target over the wire as an outside client would. This crate
//! does not depend on the reference server, so Cargo, not discipline, keeps the engine from
//! importing its types or rules (`cargo tree -p authmd-harness` shows it). Cases are data
//! ([`catalogue`], `cases/`); flows are code. The CLI package starts the bundled stack.

pub mod aid;
pub mod ambiguity;
pub mod baseline;
pub mod catalogue;
pub mod compare;
pub mod embedded;
pub mod engine;
pub mod exit_code;
pub mod expect;
pub mod junit;
pub mod language;
pub mod nearmiss;
pub mod outcome;
pub mod profile;
pub mod redact;
pub mod report;
pub mod setup;
pub mod start;
pub mod target;
pub mod target_reference;
pub mod template;
pub mod transport;
pub mod waits;
pub mod wellknown;

use std::sync::Arc;
use std::time::Instant;

use catalogue::{Case, Catalogue, Level};
use engine::{CaseResult, Harness};
use report::{Header, Report};

/// The default spec profile: the manifest that says `default = true`.
pub fn default_profile() -> String {
    profile::default_name(&repo_root())
}

/// Every profile this build can test: one manifest each under `profiles/`.
pub fn profiles() -> Vec<String> {
    profile::known(&repo_root())
}

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
    let mut report = Report::new(header(&harness, started_at), results, total, started.elapsed().as_millis() as u64);
    report.ambiguities = ambiguities_of(&harness.target.profile, &report.cases);
    report.requirement_texts = requirement_texts(&harness.target.profile);
    report
}

/// The text of every requirement of `profile` and of the AID preflight, by id (the HTML
/// report shows it beside each finding).
pub fn requirement_texts(profile: &str) -> std::collections::BTreeMap<String, String> {
    profile_catalogue(profile)
        .into_iter()
        .chain(aid_catalogue())
        .flat_map(|c| c.requirements.into_values())
        .map(|r| (r.id, r.text))
        .collect()
}

/// Which reading of each of the profile's ambiguities the results follow (none without an
/// `ambiguities.toml`).
pub fn ambiguities_of(profile: &str, results: &[CaseResult]) -> Vec<ambiguity::AmbiguityOutcome> {
    let mut out = profile_catalogue(profile)
        .map(|c| ambiguity::outcomes(&c.ambiguities, results))
        .unwrap_or_default();
    // AID's readings belong to a run that started from a domain (its cases ran).
    if let Ok(aid) = aid_catalogue()
        && results.iter().any(|r| aid.cases.iter().any(|c| c.id == r.id))
    {
        out.extend(ambiguity::outcomes(&aid.ambiguities, results));
    }
    out
}

/// The order cases start in (the semaphore is fair), each with its index in `cases` (its
/// source address): the cases that change the IdP first, so their exclusive turns come before
/// the IdP's readers queue up; then the cases that never touch the IdP, which run beside those
/// turns (a case waiting for the lock holds a job slot); then the IdP's readers. Within each,
/// the longest chains of requests first, so the run is not left waiting on one that started
/// last.
pub fn start_order(cases: Vec<Case>) -> Vec<(usize, Case)> {
    let class = |c: &Case| {
        if c.needs.contains(&catalogue::Need::IdpExclusive) {
            0
        } else if !c.uses_idp() {
            1
        } else {
            2
        }
    };
    let mut ordered: Vec<(usize, Case)> = cases.into_iter().enumerate().collect();
    ordered.sort_by_cached_key(|(i, c)| (class(c), std::cmp::Reverse(c.expected_round_trips()), *i));
    ordered
}

/// Runs `cases` on `harness`, `jobs` at a time, started in [`start_order`]. A case whose task
/// panics is reported as INCONCLUSIVE with the message, never dropped.
pub async fn run_cases(harness: Arc<Harness>, cases: Vec<Case>, progress: &Progress<'_>) -> Vec<CaseResult> {
    let total = cases.len();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(harness.target.jobs.max(1)));
    let mut set = tokio::task::JoinSet::new();
    let mut pending = std::collections::HashMap::new();
    // The permit is taken here, before the case's task exists: tasks spawned at once would race
    // for permits (and for the IdP lock) in whatever order the runtime polls them, and a long
    // case or an exclusive one could start last.
    let (order, up_front): (Vec<_>, Vec<_>) = start_order(cases).into_iter().partition(|(_, c)| !harness.reads_isolated_issuer(c));
    // The few cases that read the second issuer, where the cases that change keys run there,
    // start at once beside them: queued together, they share one turn between two of those
    // cases, where started by the jobs one by one each would take a turn of its own.
    for case in up_front {
        spawn_case(&mut set, &mut pending, &harness, case, async {}, ());
    }
    let mut order = order.into_iter().peekable();
    // The cases that change the IdP come first in the order and run one at a time under its
    // write lock, beside the jobs rather than in their slots: a slot held while waiting for
    // the lock would idle, and one taken after it would wait behind every case started since.
    // Each waits for the one before it to end rather than queueing for the lock at once: the
    // lock is fair, so queued writers would let in one reader between each two of them.
    let mut previous: Option<tokio::sync::oneshot::Receiver<()>> = None;
    while let Some(case) = order.next_if(|(_, c)| c.needs.contains(&catalogue::Need::IdpExclusive)) {
        // The sender is held until the case ends; the next one waits for it to be dropped
        // (Err: the one before panicked; its result is reported, and this one runs).
        let (done, next) = tokio::sync::oneshot::channel::<()>();
        let after = previous.replace(next);
        let wait = async move {
            if let Some(after) = after {
                let _ = after.await;
            }
        };
        spawn_case(&mut set, &mut pending, &harness, case, wait, done);
    }
    let mut next = order.next();
    let mut results = Vec::with_capacity(total);
    loop {
        let joined = tokio::select! {
            biased;
            Some(joined) = set.join_next_with_id(), if !set.is_empty() => joined,
            Ok(permit) = semaphore.clone().acquire_owned(), if next.is_some() => {
                let Some(case) = next.take() else { continue };
                next = order.next();
                spawn_case(&mut set, &mut pending, &harness, case, async {}, permit);
                continue;
            }
            else => break,
        };
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

/// Spawns the task of `case` (with its index in the run): it waits for `wait`, runs the case,
/// and holds `hold` (a job permit, a turn) until it ends. The case is remembered by its task,
/// so a task that panics is still reported.
fn spawn_case(
    set: &mut tokio::task::JoinSet<CaseResult>,
    pending: &mut std::collections::HashMap<tokio::task::Id, Case>,
    harness: &Arc<Harness>,
    (index, case): (usize, Case),
    wait: impl std::future::Future<Output = ()> + Send + 'static,
    hold: impl Send + 'static,
) {
    let (harness, meta) = (harness.clone(), case.clone());
    let handle = set.spawn(async move {
        let _hold = hold;
        wait.await;
        harness.run_case(&case, index).await
    });
    pending.insert(handle.id(), meta);
}

/// Now, as RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The report header for a run on `harness` that started at `started_at`.
pub fn header(harness: &Harness, started_at: String) -> Header {
    let config_text = format!("{:?}", harness.target);
    Header {
        schema_version: report::SCHEMA_VERSION,
        suite_version: env!("CARGO_PKG_VERSION").to_string(),
        profile: harness.target.profile.clone(),
        // A run from a domain whose preflight named no endpoint is still about that domain.
        target: match (&harness.preflight, harness.target.base_url.is_empty()) {
            (Some(p), true) => format!("domain {}", p.domain),
            _ => harness.target.base_url.clone(),
        },
        started_at,
        prm: capped(&harness.discovery.prm),
        metadata: capped(&harness.discovery.metadata),
        discovery_error: harness.discovery.error.clone(),
        readings: harness.target.readings.clone(),
        config_hash: redact::short_hash(&config_text),
        spoken: harness.discovery.spoken.clone().map(|mut s| {
            s.hybrid = harness.hybrid();
            s
        }),
        profile_source: profile::Manifest::load(&repo_root(), &harness.target.profile)
            .ok()
            .map(|m| m.source),
        discovery_exchanges: harness
            .discovery_exchanges
            .iter()
            .cloned()
            .map(|mut e| {
                e.cap_for_report();
                e
            })
            .collect(),
        preflight: harness.preflight.clone().map(|mut p| {
            p.exchanges.iter_mut().for_each(crate::outcome::Exchange::cap_for_report);
            p
        }),
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

/// Names the folder the catalogues come from instead of this build's repository.
pub const HOME_ENV: &str = "AUTHMD_CONFORMANCE_HOME";

/// Where `cases/`, `profiles/`, `checks/` and `deployments/` live: the folder [`HOME_ENV`]
/// names when it is set (a copy with other profiles); else the folder of the binary when the
/// catalogues are beside it (an unpacked release archive); else the checkout this build came
/// from when the binary is one of its builds (`cargo run`, the tests); else the catalogues
/// embedded in the binary, unpacked once into a cache folder (an installed binary: it reads
/// the catalogues it was built with, never a checkout that has moved on since).
pub fn repo_root() -> std::path::PathBuf {
    match std::env::var_os(HOME_ENV) {
        Some(home) if !home.is_empty() => std::path::PathBuf::from(home),
        _ => installed_root().clone(),
    }
}

fn installed_root() -> &'static std::path::PathBuf {
    static ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let checkout = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let exe = std::env::current_exe().ok().and_then(|e| e.canonicalize().ok());
        let beside = exe.as_deref().and_then(std::path::Path::parent);
        if let Some(dir) = beside.filter(|dir| dir.join("profiles").is_dir()) {
            return dir.to_path_buf();
        }
        let built_here = match (&exe, checkout.canonicalize()) {
            (Some(exe), Ok(checkout)) => exe.starts_with(checkout),
            _ => false,
        };
        if built_here {
            return checkout;
        }
        let folder = embedded::cache_folder();
        embedded::unpack(&folder).unwrap_or_else(|e| {
            // The catalogue loader then names the file it could not read.
            eprintln!("cannot unpack the catalogues into {}: {e}", folder.display());
            folder
        })
    })
}

/// Loads the default profile's catalogue.
pub fn default_catalogue() -> Result<Catalogue, catalogue::CatalogueError> {
    profile_catalogue(&default_profile())
}

/// Loads the catalogue of the profile `name`: its manifest names the requirements file and
/// the case directory, and cases may name the profiles they hold for.
pub fn profile_catalogue(name: &str) -> Result<Catalogue, catalogue::CatalogueError> {
    let root = repo_root();
    let manifest = profile::Manifest::load(&root, name).map_err(|message| catalogue::CatalogueError {
        path: format!("profiles/{name}.toml"),
        message,
    })?;
    Catalogue::for_profile(&root, &manifest)
}

/// The AID preflight's catalogue (`cases-aid/`): its requirements and cases, added to a run
/// that starts from a domain, whatever auth.md profile follows.
pub fn aid_catalogue() -> Result<Catalogue, catalogue::CatalogueError> {
    Catalogue::load(&repo_root().join("cases-aid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_that_change_the_idp_start_first_then_those_that_never_use_it() {
        let catalogue = default_catalogue().expect("catalogue");
        let ordered = start_order(catalogue.cases.clone());
        assert_eq!(ordered.len(), catalogue.cases.len());
        let exclusive = |c: &Case| c.needs.contains(&catalogue::Need::IdpExclusive);
        let first_shared = ordered.iter().position(|(_, c)| !exclusive(c)).expect("a shared case");
        assert!(first_shared > 0, "no case changes the IdP");
        assert!(ordered[first_shared..].iter().all(|(_, c)| !exclusive(c)));
        // Then the cases that never touch the IdP, then its readers, each longest first.
        let first_reader = ordered.iter().position(|(_, c)| c.uses_idp() && !exclusive(c)).expect("a reader");
        assert!(ordered[first_shared..first_reader].iter().all(|(_, c)| !c.uses_idp()));
        assert!(ordered[first_reader..].iter().all(|(_, c)| c.uses_idp()));
        for run in [&ordered[first_shared..first_reader], &ordered[first_reader..]] {
            let trips: Vec<u64> = run.iter().map(|(_, c)| c.expected_round_trips()).collect();
            assert!(trips.windows(2).all(|w| w[0] >= w[1]), "{trips:?}");
        }
        // Every case keeps its own index, so its source address does not depend on the order.
        assert!(ordered.iter().all(|(i, c)| catalogue.cases[*i].id == c.id));
        // A case that never touches the IdP does not wait for one that changes it.
        let anonymous_only = catalogue
            .cases
            .iter()
            .find(|c| c.id == "reg-anon-04-fresh-registrations")
            .expect("case");
        assert!(!anonymous_only.uses_idp());
        let mints = catalogue.cases.iter().find(|c| c.id == "cred-02-no-refresh-token").expect("case");
        assert!(mints.uses_idp());
    }
}
