//! Self-validation: every case passes against the bundled reference server, and against each of
//! its conforming variants (other error-name synonyms, oracle shape, mail source, `aud` reading,
//! JWKS cool-down, no clock header): a case tuned to one server's shapes fails here. The
//! catalogue lint holds; `cases/INDEX.md` is current; no secret seen during the run reaches any
//! report file. Each case runs inside its own trial (`v0.1/idjag/idjag-28-…`, or
//! `v0.1+alternates/…` on a variant), so `cargo test --test conformance -- v0.1/idjag/idjag-28`
//! starts one stack and runs one case.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use authmd_conformance::bundled::{Bundled, Shape};
use authmd_conformance::catalogue::Case;
use authmd_conformance::default_catalogue;
use authmd_conformance::deployment::Deployment;
use authmd_conformance::engine::{CaseResult, Harness, SkipReason, Verdict};
use authmd_conformance::redact::Secrets;
use authmd_reference_server::Defects;
use libtest_mimic::{Arguments, Failed, Trial};

/// A started stack and the harness that drives it.
type Started = (Arc<Harness>, Bundled);

/// Stacks started on first use and shared by every trial that needs them, so a filtered run
/// (`-- v0.1/idjag/idjag-28`) starts one stack and runs one case.
struct Stacks {
    runtime: tokio::runtime::Runtime,
    started: Mutex<HashMap<(String, Shape), Started>>,
}

impl Stacks {
    fn harness(&self, deployment: &Deployment, shape: Shape) -> Result<Arc<Harness>, Failed> {
        let mut started = self.started.lock().map_err(|_| Failed::from("stacks lock poisoned"))?;
        if let Some((harness, _)) = started.get(&(deployment.name.clone(), shape)) {
            return Ok(harness.clone());
        }
        let (harness, stack) = self
            .runtime
            .block_on(authmd_conformance::bundled_harness(
                Defects::none(),
                shape,
                deployment,
                None,
                Secrets::default(),
            ))
            .map_err(|e| Failed::from(format!("bundled stack ({}): {e}", deployment.name)))?;
        started.insert((deployment.name.clone(), shape), (harness.clone(), stack));
        Ok(harness)
    }

    fn run(&self, deployment: &Deployment, case: &Case, index: usize) -> Result<CaseResult, Failed> {
        let harness = self.harness(deployment, Shape::for_case(case))?;
        Ok(self.runtime.block_on(harness.run_case(case, index)))
    }
}

fn main() {
    let mut args = Arguments::from_args();
    // Each trial waits on the target, not the CPU: run many at once, as `run` does.
    args.test_threads.get_or_insert(32);
    let catalogue = match default_catalogue() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("catalogue: {e}");
            std::process::exit(101);
        }
    };
    let stacks = Arc::new(Stacks {
        runtime: tokio::runtime::Runtime::new().expect("tokio runtime"),
        started: Mutex::new(HashMap::new()),
    });
    // AUTHMD_SELFTEST_STANDARD_ONLY=1 leaves the other deployments out (mutation testing runs
    // the suite hundreds of times; they guard the cases, not the server).
    // AUTHMD_SELFTEST_NO_WAIT=1 leaves out only the deployments that wait out real TTLs, so a
    // mutant is judged by every reading the alternates deployment follows too.
    let standard_only = std::env::var_os("AUTHMD_SELFTEST_STANDARD_ONLY").is_some();
    let no_wait = std::env::var_os("AUTHMD_SELFTEST_NO_WAIT").is_some();
    let fail = |what: &str, e: String| -> ! {
        eprintln!("{what}: {e}");
        std::process::exit(101);
    };
    let mut trials = Vec::new();
    let mut first_contacts = Vec::new();
    // Every profile's catalogue against every plain deployment of it: `v0.1/idjag/…` on the
    // standard one, `v0.1+alternates/idjag/…` on another, so a filter on the standard name
    // selects only the standard trial.
    for profile in authmd_conformance::profiles() {
        let cat = authmd_conformance::profile_catalogue(&profile).unwrap_or_else(|e| fail(&profile, e.to_string()));
        let mut deployments: Vec<&'static Deployment> = Deployment::of_profile(&profile)
            .unwrap_or_else(|e| fail("deployments", e))
            .into_iter()
            .filter(|d| !d.publishes_aid())
            .filter(|d| d.is_standard() || !standard_only)
            .filter(|d| !(no_wait && d.waits_out_ttls()))
            .filter(|d| postgres_if_needed(d))
            .collect();
        // The deployment that really waits for its TTLs starts first, so the others run inside
        // its wait.
        deployments.sort_by_key(|d| (!d.waits_out_ttls(), d.is_standard()));
        for deployment in deployments {
            for (index, case) in cat.cases.iter().enumerate() {
                let name = if deployment.is_standard() {
                    format!("{profile}/{}", case.full_name())
                } else {
                    format!("{profile}+{}/{}", deployment.name, case.full_name())
                };
                let (stacks, case) = (stacks.clone(), case.clone());
                let kind = if deployment.is_standard() { "case" } else { "variant" };
                trials.push(Trial::test(name, move || judge(deployment, &stacks.run(deployment, &case, index)?)).with_kind(kind));
            }
            first_contacts.push((deployment, cat.cases.clone()));
        }
    }
    // The AID preflight's catalogue (`aid/proof/pka-01-…`) against each deployment that
    // publishes AID (`aid1/record/…` on the one publishing aid1: a case about the key SKIPs
    // there, naming why).
    let aid = authmd_conformance::aid_catalogue().unwrap_or_else(|e| fail("AID catalogue", e.to_string()));
    for deployment in Deployment::all()
        .unwrap_or_else(|e| fail("deployments", e))
        .iter()
        .filter(|d| d.publishes_aid())
    {
        for (index, case) in aid.cases.iter().enumerate() {
            let (stacks, case) = (stacks.clone(), case.clone());
            trials.push(
                Trial::test(format!("{}/{}", deployment.name, case.full_name()), move || {
                    judge(deployment, &stacks.run(deployment, &case, index)?)
                })
                .with_kind("case"),
            );
        }
    }
    // First contact: each conforming deployment, configured as a new user's config is after
    // `init` (no readings declared, no key-rotation cool-down declared, no rate burst or scope
    // probes), gets no FAIL, WARN or INCONCLUSIVE: a reading it does not declare, a setting it
    // lacks, never reads as a server failure.
    if !standard_only {
        for (deployment, cases) in first_contacts {
            trials.push(
                Trial::test(format!("first-contact/{}", deployment.name), move || {
                    first_contact(deployment, &cases, None)
                })
                .with_kind("first-contact"),
            );
        }
    }
    // The client a remote target gets: one pool shared by every case. Only discovery, which the
    // reference server does not rate-limit by address (without their own addresses, the other
    // areas' registrations would meet its per-address limit).
    let discovery: Vec<Case> = catalogue.cases.iter().filter(|c| c.area == "discovery").cloned().collect();
    let standard = Deployment::named("standard").unwrap_or_else(|e| fail("deployments", e));
    trials.push(
        Trial::test("shared-client/standard/discovery", move || {
            first_contact(standard, &discovery, Some(false))
        })
        .with_kind("first-contact"),
    );
    let mapped = catalogue.ambiguities.len();
    trials.push(
        Trial::test("catalogue/every-ambiguity-is-mapped", move || {
            // The loader refuses a reading with neither a case nor a reason; this holds the count.
            if mapped == 43 {
                Ok(())
            } else {
                Err(format!("cases/ambiguities.toml maps {mapped} of the 43 ambiguities of catalogue §C").into())
            }
        })
        .with_kind("lint"),
    );
    // Every generated file is current (each catalogue's INDEX.md, the vocabulary, the schema);
    // `UPDATE_INDEX=1` (scripts/bless) writes them first.
    let generated = match authmd_conformance::lint::generated() {
        Ok(files) => files,
        Err(e) => {
            eprintln!("generated files: {e}");
            std::process::exit(101);
        }
    };
    for file in generated {
        trials.push(
            Trial::test(format!("catalogue/current/{}", file.path.display()), move || {
                let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(&file.path);
                if std::env::var_os("UPDATE_INDEX").is_some() {
                    std::fs::write(&path, &file.text).map_err(|e| Failed::from(e.to_string()))?;
                }
                if std::fs::read_to_string(&path).unwrap_or_default() == file.text {
                    Ok(())
                } else {
                    Err(format!("{} is stale; regenerate with scripts/bless", file.path.display()).into())
                }
            })
            .with_kind("lint"),
        );
    }
    // The rules `lint` holds the catalogues to, beyond loading.
    trials.push(
        Trial::test("catalogue/lint", || {
            let lint = authmd_conformance::lint::catalogues();
            if lint.problems.is_empty() {
                Ok(())
            } else {
                Err(lint.problems.join("\n").into())
            }
        })
        .with_kind("lint"),
    );
    let cases = catalogue.cases.clone();
    let requirements = catalogue.requirements.clone();
    trials.push(
        Trial::test("catalogue/not-testable-requirements-have-no-cases", move || {
            for c in &cases {
                for r in &c.requirements {
                    if requirements.get(r).is_some_and(|r| r.not_testable.is_some()) {
                        return Err(format!("{} cites {r}, which is marked not testable", c.id).into());
                    }
                }
            }
            Ok(())
        })
        .with_kind("lint"),
    );
    let whole = catalogue.clone();
    trials.push(
        Trial::test("redaction/no-secret-in-any-report-file", move || {
            let done = full_run(&whole)?;
            let out_dir = std::env::temp_dir().join(format!("authmd-selftest-{}", std::process::id()));
            done.report
                .write_to(&out_dir, &done.secrets)
                .map_err(|e| Failed::from(e.to_string()))?;
            let all = done.secrets.all();
            if all.len() < 50 {
                return Err(format!("only {} secrets were collected; the scan would prove nothing", all.len()).into());
            }
            for entry in std::fs::read_dir(&out_dir).map_err(|e| Failed::from(e.to_string()))? {
                let path = entry.map_err(|e| Failed::from(e.to_string()))?.path();
                let text = std::fs::read_to_string(&path).map_err(|e| Failed::from(e.to_string()))?;
                // OTPs are six digits and could collide with unrelated numbers; check them in
                // their quoted JSON form, and every longer secret anywhere.
                for s in &all {
                    let leaked = if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
                        text.contains(&format!("\"{s}\""))
                    } else {
                        text.contains(s.as_str())
                    };
                    if leaked {
                        return Err(format!(
                            "{} contains a secret (hash {})",
                            path.display(),
                            authmd_conformance::redact::short_hash(s)
                        )
                        .into());
                    }
                }
            }
            let _ = std::fs::remove_dir_all(&out_dir);
            Ok(())
        })
        .with_kind("redaction"),
    );
    let whole = catalogue.clone();
    trials.push(
        Trial::test("reports/golden-reports-are-current", move || {
            let done = full_run(&whole)?;
            let (golden_report, golden_secrets) = (&done.report, &done.secrets);
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/golden");
            let files = [
                ("summary.md", normalise(&golden_report.to_markdown(golden_secrets))),
                ("junit.xml", normalise(&golden_report.to_junit(golden_secrets))),
                ("verdicts.json", verdicts(golden_report)),
            ];
            let mut stale = Vec::new();
            for (name, text) in files {
                let path = dir.join(name);
                if std::env::var_os("UPDATE_GOLDEN").is_some() {
                    std::fs::create_dir_all(&dir).map_err(|e| Failed::from(e.to_string()))?;
                    std::fs::write(&path, &text).map_err(|e| Failed::from(e.to_string()))?;
                } else if std::fs::read_to_string(&path).unwrap_or_default() != text {
                    stale.push(name);
                }
            }
            if stale.is_empty() {
                Ok(())
            } else {
                Err(format!("reports/golden/{} differ; review, then bless with scripts/bless", stale.join(", ")).into())
            }
        })
        .with_kind("golden"),
    );
    libtest_mimic::run(&args, trials).exit();
}

/// A case passes on a conforming server: PASS, a reading the configuration does not gate on,
/// or (on another deployment than the standard one) a SKIP for a capability it lacks by design.
fn judge(deployment: &Deployment, result: &CaseResult) -> Result<(), Failed> {
    match &result.verdict {
        Verdict::Pass => Ok(()),
        Verdict::Info if result.reading.is_some() => Ok(()),
        // One process cannot be several replicas: the cross-replica cases run (and must pass)
        // against the `replicas` deployment, a variant of the standard one, and only there.
        Verdict::Skip(SkipReason::Needs { setting, .. }) if *setting == "replicas" => match deployment.replicas {
            0 | 1 => Ok(()),
            _ => Err(Failed::from("the replicas deployment skipped a cross-replica case")),
        },
        // A setting this deployment leaves out by design (the setting is named in the variant).
        Verdict::Skip(SkipReason::Needs { .. }) if !deployment.is_standard() => Ok(()),
        // A record without a key: the key and proof cases do not apply, and say so.
        Verdict::Skip(SkipReason::Inapplicable(_)) if deployment.publishes_aid() => Ok(()),
        other => Err(Failed::from(format!(
            "{} against the {} reference server: {:?}\n{}",
            other.label(),
            deployment.name,
            other,
            result.findings.iter().map(|f| format!("  {f}")).collect::<Vec<_>>().join("\n")
        ))),
    }
}

/// Every case against `deployment` under a config as `init` writes it: nothing but PASS, INFO
/// and SKIP. `isolate` overrides whether each case has its own source address (without, every
/// case shares one pooled client, as against a remote target).
fn first_contact(deployment: &Deployment, cases: &[Case], isolate: Option<bool>) -> Result<(), Failed> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failed::from(e.to_string()))?;
    let new_user = move |t: &mut authmd_conformance::target::TargetConfig| {
        t.isolate_source_ips = isolate;
        t.readings.clear();
        t.idp.jwks_refetch_cooldown_secs = None;
        t.rate_burst = None;
        t.probes.clear();
        t.case_timeout_secs = authmd_conformance::target::TargetConfig::new("http://x").case_timeout_secs;
    };
    let results = runtime.block_on(async {
        let mut results = Vec::new();
        for shape in [Shape::Full, Shape::Restricted] {
            let selected: Vec<Case> = cases.iter().filter(|c| Shape::for_case(c) == shape).cloned().collect();
            if selected.is_empty() {
                continue;
            }
            let (harness, _stack) = authmd_conformance::bundled_harness_configured(
                Defects::none(),
                shape,
                deployment,
                None,
                Secrets::default(),
                authmd_conformance::bundled::AID_DOMAIN,
                new_user,
            )
            .await
            .map_err(|e| Failed::from(format!("bundled stack ({}): {e}", deployment.name)))?;
            results.extend(authmd_conformance::run_cases(harness, selected, &|_, _, _| {}).await);
        }
        Ok::<_, Failed>(results)
    })?;
    if results.len() != cases.len() {
        return Err(format!("{} of {} cases ran", results.len(), cases.len()).into());
    }
    let bad: Vec<String> = results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Fail | Verdict::Warn | Verdict::Inconclusive(_)))
        .map(|r| {
            format!(
                "{} {}: {}",
                r.verdict.label(),
                r.name,
                r.findings
                    .first()
                    .map(|f| format!("{f:#}"))
                    .unwrap_or_else(|| format!("{:?}", r.verdict))
            )
        })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "against the {} deployment configured as by init:\n  {}",
            deployment.name,
            bad.join("\n  ")
        )
        .into())
    }
}

/// Whether `deployment` can run here: one on PostgreSQL needs it installed. Without it the
/// deployment is left out, said once, unless `AUTHMD_REQUIRE_POSTGRES=1` (CI) makes that a
/// failure.
fn postgres_if_needed(deployment: &Deployment) -> bool {
    if deployment.database != authmd_conformance::deployment::Database::Postgres {
        return true;
    }
    match authmd_reference_server::pg_cluster::find_bin() {
        Ok(_) => true,
        Err(e) if authmd_reference_server::pg_cluster::required() => {
            eprintln!("PostgreSQL is required (AUTHMD_REQUIRE_POSTGRES=1): {e}");
            std::process::exit(101);
        }
        Err(e) => {
            eprintln!("leaving out the {} deployment: {e}", deployment.name);
            false
        }
    }
}

/// One full run of the standard stack, made once and shared by the trials about a whole report
/// (redaction, golden files).
fn full_run(catalogue: &authmd_conformance::catalogue::Catalogue) -> Result<&'static authmd_conformance::BundledRun, Failed> {
    static RUN: std::sync::OnceLock<Result<authmd_conformance::BundledRun, String>> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        runtime
            .block_on(authmd_conformance::run_bundled(
                Defects::none(),
                Deployment::default_for(&authmd_conformance::default_profile(), false)
                    .map_err(|e| format!("deployments: {e}"))?
                    .ok_or("the default profile has no default deployment")?,
                catalogue.cases.clone(),
                None,
                authmd_conformance::bundled::AID_DOMAIN,
                &|_, _, _| {},
            ))
            .map_err(|e| format!("bundled stack: {e}"))
    })
    .as_ref()
    .map_err(|e| Failed::from(e.clone()))
}

/// Removes what differs between runs: ports, times, durations.
fn normalise(text: &str) -> String {
    let port = regex::Regex::new(r"127\.0\.0\.1:\d+").expect("regex");
    let secs = regex::Regex::new(r"in \d+(\.\d+)?s").expect("regex");
    let time = regex::Regex::new(r#"time="[0-9.]+""#).expect("regex");
    let timestamp = regex::Regex::new(r#"timestamp="[^"]*""#).expect("regex");
    // Which case is slowest varies from run to run.
    let critical = regex::Regex::new(r"(?m)^Critical path: .*$").expect("regex");
    // Identifiers the server mints per run (`cla_…`, `reg_…`, `user_…`), as evidence quotes them.
    let ids = regex::Regex::new(r"\b(cla|reg|user)_[A-Za-z0-9_-]{8,}").expect("regex");
    // A redacted value's tag hashes the value, which is new each run.
    let redacted = regex::Regex::new(r"redacted:[0-9a-f]+").expect("regex");
    let text = ids.replace_all(text, "${1}_ID");
    let text = redacted.replace_all(&text, "redacted:HASH");
    let text = port.replace_all(&text, "127.0.0.1:PORT");
    let text = secs.replace_all(&text, "in Ns");
    let text = critical.replace_all(&text, "Critical path: CASE");
    // Still valid JUnit: the schema's time is digits.
    let text = timestamp.replace_all(&text, r#"timestamp="TIMESTAMP""#);
    time.replace_all(&text, r#"time="0.000""#).into_owned()
}

/// Each case's verdict and finding kinds: the stable core of the JSON report.
fn verdicts(report: &authmd_conformance::report::Report) -> String {
    let map: std::collections::BTreeMap<&str, serde_json::Value> = report
        .cases
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                serde_json::json!({ "verdict": c.verdict.label(), "findings": c.findings.iter().map(|f| f.kind).collect::<Vec<_>>() }),
            )
        })
        .collect();
    serde_json::to_string_pretty(&map).unwrap_or_default() + "\n"
}
