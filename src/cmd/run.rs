//! `run`: the suite against the bundled reference server or a target of the user's. Every
//! argument and the output folder are checked before the first request; the reports are
//! written, then the summary says which were.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use authmd_conformance::catalogue::{Catalogue, Level};
use authmd_conformance::deployment::Deployment;
use authmd_conformance::engine::{Harness, Verdict};
use authmd_conformance::exit_code::Ending;
use authmd_conformance::report::Report;
use authmd_conformance::target::TargetConfig;

use clap::Args;

use super::{Failure, FilterArgs, defects, parse_filter};

/// `run`'s arguments.
#[derive(Args)]
pub struct RunArgs {
    /// The target's base URL; without it the bundled reference server is started.
    #[arg(long)]
    target: Option<String>,
    /// Target configuration (TOML); see `examples/target.toml`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory for the reports. Defaults to `reports/runs/<timestamp>`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Switch on a reference-server defect for the bundled run (repeatable).
    #[arg(long = "defect")]
    defects: Vec<String>,
    /// Cases at once (overrides the config).
    #[arg(long)]
    jobs: Option<usize>,
    /// Which conforming deployment of the bundled reference server (one of `deployments/`):
    /// for v0.1, standard, alternates (other error names, oracle shape, HTML outbox mail,
    /// `aud` = resource, a JWKS cool-down) or no-clock (short TTLs, no clock header).
    #[arg(long)]
    variant: Option<String>,
    /// Put the bundled server behind a delaying proxy adding this many milliseconds each way
    /// (a round trip costs twice it): how a run against a remote target behaves, on loopback.
    /// A benchmark rig (`bench/latency.sh`); plain deployments only.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=5000))]
    latency_ms: Option<u64>,
    /// The spec profile to test (overrides the config's `profile`); see `profiles/`.
    #[arg(long)]
    profile: Option<String>,
    /// Known-failure baseline (TOML): listed failures do not fail the run; stale entries do.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Start from a bare domain: the AID preflight (the `_agent.<domain>` record, the endpoint
    /// proof, the handoff) runs first and its cases join the run. Without a target, config or
    /// resolver, the bundled server is published at this domain on a loopback DNS server.
    #[arg(long)]
    domain: Option<String>,
    /// The DNS server for `--domain` (`127.0.0.1:5353`); the system resolver by default.
    #[arg(long)]
    resolver: Option<std::net::SocketAddr>,
    #[command(flatten)]
    filter: FilterArgs,
}

/// What a run runs against, settled before anything is sent.
enum Plan {
    /// A deployment of the bundled reference server (published at `domain` when it speaks AID).
    Bundled {
        deployment: &'static Deployment,
        domain: String,
        defects: authmd_reference_server::Defects,
    },
    /// The user's server.
    External(Box<TargetConfig>),
}

/// The catalogue a run uses: the profile's, with the AID preflight's cases when it starts from
/// a domain.
fn run_catalogue(args: &RunArgs, profile: &str, config: Option<&TargetConfig>) -> Result<Catalogue, Failure> {
    let mut cat = authmd_conformance::profile_catalogue(profile).map_err(|e| Failure::Usage(format!("catalogue: {e}")))?;
    let from_domain = args.domain.is_some()
        || args
            .variant
            .as_deref()
            .and_then(|v| Deployment::named(v).ok())
            .is_some_and(Deployment::publishes_aid)
        || config.is_some_and(|t| t.aid.is_some());
    if from_domain {
        let aid = authmd_conformance::aid_catalogue().map_err(|e| Failure::Usage(format!("AID catalogue: {e}")))?;
        cat.requirements.extend(aid.requirements);
        cat.cases.splice(0..0, aid.cases);
    }
    Ok(cat)
}

/// The bundled deployment `args` asks for: `--variant` names one of the profile's deployments;
/// without it, the profile's default one (its default AID one with `--domain`).
fn bundled_deployment(args: &RunArgs, profile: &str) -> Result<&'static Deployment, Failure> {
    let of_profile = Deployment::of_profile(profile).map_err(|e| Failure::Usage(format!("deployments: {e}")))?;
    let names = |aid: Option<bool>| {
        of_profile
            .iter()
            .filter(|d| aid.is_none_or(|a| d.publishes_aid() == a))
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if of_profile.is_empty() {
        let speaks: std::collections::BTreeSet<&str> = Deployment::all()
            .map_err(|e| Failure::Usage(format!("deployments: {e}")))?
            .iter()
            .map(|d| d.profile.as_str())
            .collect();
        return Err(Failure::Usage(format!(
            "profile {profile}: the bundled reference server speaks {} (profiles in this build: {})",
            speaks.into_iter().collect::<Vec<_>>().join(" and "),
            authmd_conformance::profiles().join(", ")
        )));
    }
    let from_domain = args.domain.is_some();
    match args.variant.as_deref() {
        Some(name) => {
            let Some(deployment) = of_profile.iter().find(|d| d.name == name) else {
                return Err(Failure::Usage(format!(
                    "--variant `{name}`: the bundled deployments of {profile} are {}",
                    names(None)
                )));
            };
            if from_domain && !deployment.publishes_aid() {
                return Err(Failure::Usage(format!(
                    "--domain with the bundled server: --variant {}, not {name}",
                    names(Some(true))
                )));
            }
            Ok(deployment)
        }
        None => Deployment::default_for(profile, from_domain)
            .map_err(|e| Failure::Usage(format!("deployments: {e}")))?
            .ok_or_else(|| {
                Failure::Usage(if from_domain {
                    format!("--domain with the bundled server: no deployment of {profile} publishes AID")
                } else {
                    format!("profile {profile}: no bundled deployment is its default ({})", names(None))
                })
            }),
    }
}

/// The output folder, made ready before the run: `--out` as given (created if missing; a
/// file, a link or an unwritable folder is a usage error), else a new
/// `reports/runs/<timestamp>` that no other run has used.
fn out_dir(args: &RunArgs) -> Result<PathBuf, Failure> {
    match &args.out {
        Some(dir) => authmd_conformance::report::prepare_out(dir, false).map_err(|e| Failure::Usage(format!("--out {e}"))),
        None => {
            let stamp = time::OffsetDateTime::now_utc()
                .format(&time::macros::format_description!("[year][month][day]-[hour][minute][second]"))
                .unwrap_or_default();
            authmd_conformance::report::prepare_out(&PathBuf::from("reports/runs").join(stamp), true)
                .map_err(|e| Failure::Usage(format!("the reports folder: {e} (name another with --out)")))
        }
    }
}

/// Runs the suite as `args` say.
pub(crate) async fn run(args: RunArgs) -> Result<Ending, Failure> {
    // The config is read once; a broken one is a usage error before anything runs.
    let loaded = args
        .config
        .as_deref()
        .map(TargetConfig::load)
        .transpose()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    if args.latency_ms.is_some() && (args.config.is_some() || args.target.is_some()) {
        return Err(Failure::Usage(
            "--latency-ms puts the bundled reference server behind a delaying proxy; it does not apply with --config or --target".into(),
        ));
    }
    if args.latency_ms.is_some() && args.domain.is_some() {
        return Err(Failure::Usage(
            "--latency-ms applies to plain deployments; an AID run (--domain) is reached by its domain's own address".into(),
        ));
    }
    if args.variant.is_some() && (args.config.is_some() || args.target.is_some()) {
        return Err(Failure::Usage(
            "--variant picks a deployment of the bundled reference server; it does not apply with --config or --target".into(),
        ));
    }
    if !args.defects.is_empty() && (args.config.is_some() || args.target.is_some()) {
        return Err(Failure::Usage(
            "--defect only applies to the bundled reference server (run without --target)".into(),
        ));
    }
    // The profile picks the catalogue: `--profile`, else the target config's, else the default.
    let profile = match (&args.profile, &loaded) {
        (Some(p), _) => p.clone(),
        (None, Some(t)) => t.profile.clone(),
        (None, None) => authmd_conformance::default_profile(),
    };
    if !authmd_conformance::profiles().contains(&profile) {
        return Err(Failure::Usage(format!(
            "profile `{profile}`: this build has {}",
            authmd_conformance::profiles().join(", ")
        )));
    }
    let cat = run_catalogue(&args, &profile, loaded.as_ref())?;
    if let Some(t) = &loaded {
        cat.check_readings(&t.readings).map_err(|e| {
            Failure::Usage(format!(
                "{}: {e}",
                args.config.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
            ))
        })?;
    }
    // Read the baseline first: a bad one is a usage error before anything runs.
    let baseline = args
        .baseline
        .as_deref()
        .map(authmd_conformance::baseline::Baseline::load)
        .transpose()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let filter = parse_filter(&args.filter, &cat)?;
    let cases: Vec<_> = cat.cases.iter().filter(|c| filter.selects(c)).cloned().collect();
    if cases.is_empty() {
        eprintln!("no case selected");
        return Ok(Ending::NothingSelected);
    }
    let bundled = args.target.is_none() && args.config.is_none() && args.resolver.is_none();
    let plan = if bundled {
        let domain = args
            .domain
            .as_deref()
            .unwrap_or(authmd_conformance::bundled::AID_DOMAIN)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if domain
            .split('.')
            .any(|l| l.is_empty() || l.len() > 63 || l.contains(['/', ':', ' ']))
        {
            return Err(Failure::Usage(format!("--domain `{domain}` is not a domain name")));
        }
        Plan::Bundled {
            deployment: bundled_deployment(&args, &profile)?,
            domain,
            defects: defects(&args.defects)?,
        }
    } else {
        Plan::External(Box::new(external_target(&args, loaded)?))
    };
    let out = out_dir(&args)?;
    let progress = super::progress::Progress::start(cases.len(), std::io::stderr().is_terminal());
    let step = |result: &authmd_conformance::engine::CaseResult, done: usize, total: usize| progress.case_done(result, done, total);
    let (report, secrets) = match plan {
        Plan::Bundled {
            deployment,
            domain,
            defects,
        } => {
            eprintln!("running {profile} against the bundled reference server, mock IdP and mailbox");
            let reach = authmd_conformance::bundled::Reach {
                domain: domain.clone(),
                one_way: args.latency_ms.map(std::time::Duration::from_millis),
            };
            let done = authmd_conformance::run_bundled(defects, deployment, cases, args.jobs, reach, &step)
                .await
                .map_err(|e| Failure::Harness(e.to_string()))?;
            (done.report, done.secrets)
        }
        Plan::External(target) => {
            let mut parts = authmd_conformance::start::external_parts(*target).await?;
            parts.jobs = args.jobs;
            // Discovery never aborts the run: an unreachable or broken target still gets a
            // report, with the dependent cases INCONCLUSIVE or SKIP and the reason.
            let harness = Arc::new(Harness::build(parts).await.map_err(|e| Failure::Harness(e.to_string()))?);
            (
                authmd_conformance::run(harness.clone(), cases, &step).await,
                harness.secrets.clone(),
            )
        }
    };
    progress.finish();
    finish(report, &secrets, &out, &cat, baseline.as_ref())
}

/// The user's target: the config (or `--target` alone) with the command line's overrides.
fn external_target(args: &RunArgs, loaded: Option<TargetConfig>) -> Result<TargetConfig, Failure> {
    let mut target = loaded.unwrap_or_else(|| TargetConfig::new(args.target.as_deref().unwrap_or_default()));
    if let Some(domain) = &args.domain {
        let mut aid = target
            .aid
            .clone()
            .unwrap_or_else(|| authmd_conformance::target::AidTarget::new(domain, None));
        aid.domain = domain.trim_end_matches('.').to_ascii_lowercase();
        target.aid = Some(aid);
    }
    if let (Some(resolver), Some(aid)) = (args.resolver, target.aid.as_mut()) {
        aid.resolver = Some(resolver);
    } else if args.resolver.is_some() {
        return Err(Failure::Usage("--resolver needs --domain (or [aid] in the config)".into()));
    }
    if let Some(url) = &args.target {
        target.base_url = url.trim_end_matches('/').to_string();
    }
    if let Some(profile) = &args.profile {
        target.profile = profile.clone();
    }
    target.check().map_err(|e| Failure::Usage(format!("target: {e}")))?;
    Ok(target)
}

/// Writes the reports, prints the summary (which names only the files written), and says how
/// the run ends.
fn finish(
    report: Report,
    secrets: &authmd_conformance::redact::Secrets,
    out: &std::path::Path,
    cat: &Catalogue,
    baseline: Option<&authmd_conformance::baseline::Baseline>,
) -> Result<Ending, Failure> {
    // Everything printed passes the redactor and is made inert (target text may carry escape
    // sequences); the whole text is scanned again before it is printed, failing closed.
    let clean = |s: &str| authmd_conformance::redact::inert(&secrets.redact(s), false);
    if let Some(spoken) = report.header.spoken.as_ref().filter(|s| s.speaks == "mixed") {
        eprintln!(
            "warning: the metadata mixes {} names ({}) with a later version's ({})",
            report.header.profile,
            clean(&spoken.own.join(", ")),
            clean(&spoken.later.join(", "))
        );
    }
    if let Some(hybrid) = report.header.spoken.as_ref().and_then(|s| s.hybrid.as_deref()) {
        eprintln!("warning: hybrid target: {}", clean(hybrid));
    }
    let other_profile = report.header.spoken.as_ref().is_some_and(|s| s.is_other_profile());
    if let Some(e) = report.header.discovery_error.as_ref().filter(|_| !other_profile) {
        eprintln!(
            "warning: discovery failed: {}; dependent cases were not run",
            clean(e).chars().take(400).collect::<String>()
        );
    }
    if secrets.skipped() > 0 {
        eprintln!(
            "note: {} secret-looking values in the target's answers were not registered for redaction (at most {} new per answer, {} KiB per run); any it sent back was registered when it sent it",
            secrets.skipped(),
            authmd_conformance::redact::HARVEST_PER_ANSWER,
            authmd_conformance::redact::HARVEST_RUN_BYTES >> 10
        );
    }
    // The baseline's FAILs: skipped with its reason in JUnit, in their own section of summary.md.
    let mut report = report;
    if let Some(b) = baseline {
        let failed: std::collections::BTreeSet<&str> = report
            .cases
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Fail))
            .map(|c| c.name.as_str())
            .collect();
        report.known_failures = b
            .known_failures
            .iter()
            .filter(|k| failed.contains(k.case.as_str()))
            .map(|k| (k.case.clone(), k.reason.clone()))
            .collect();
    }
    let written = report.write_all(out, secrets);
    let mut summary = format!("{:<48} {:<13} {:<13} first finding / reason\n", "case", "level", "verdict");
    for c in &report.cases {
        if matches!(c.verdict, Verdict::Pass) {
            continue;
        }
        let why = c.deciding_finding().map(|f| format!("{f:#}")).unwrap_or_else(|| match &c.verdict {
            Verdict::Skip(r) => r.to_string(),
            Verdict::Inconclusive(r) => r.clone(),
            _ => c.note.clone().unwrap_or_default(),
        });
        summary += &format!(
            "{:<48} {:<13} {} {}\n",
            c.name,
            c.level.as_str(),
            paint(&format!("{:<13}", c.verdict.label()), c.verdict.label()),
            clean(&why).chars().take(160).collect::<String>()
        );
    }
    let counts = report
        .footer
        .counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    summary += &format!(
        "\n{} cases in {:.2}s: {counts}\n",
        report.footer.total,
        report.footer.duration_ms as f64 / 1000.0
    );
    summary += &if written.files.is_empty() {
        format!("reports: none written to {}", out.display())
    } else if written.complete() {
        format!("reports: {}", out.display())
    } else {
        format!(
            "reports: {} in {} (not all: see the errors below)",
            written.files.join(", "),
            out.display()
        )
    };
    let leaks = secrets.leaks(&summary);
    if leaks.is_empty() {
        println!("{summary}");
    } else {
        println!(
            "the summary is withheld: it would have printed secret {}; see the reports in {}",
            leaks.join(", "),
            out.display()
        );
    }
    for w in written.withheld.iter().chain(&written.failed) {
        eprintln!("error: {}", clean(w));
    }
    if !written.complete() {
        return Err(Ending::Harness(format!(
            "{} of 4 reports were not written in {}",
            written.withheld.len() + written.failed.len(),
            out.display()
        )));
    }
    if !leaks.is_empty() {
        return Err(Ending::Harness("the summary would have printed a secret".into()));
    }
    if report.lost() > 0 {
        return Err(Ending::Harness(format!(
            "{} of {} selected cases are missing from the report (a harness bug)",
            report.lost(),
            report.footer.selected
        )));
    }
    if other_profile {
        return Err(Ending::WrongProfile(format!(
            "nothing was judged: {}",
            clean(
                report
                    .header
                    .discovery_error
                    .as_deref()
                    .unwrap_or("the target speaks another auth.md")
            )
        )));
    }
    let gating = match baseline {
        Some(b) => {
            let names = cat.cases.iter().map(|c| c.full_name()).collect();
            let today = time::OffsetDateTime::now_utc()
                .format(&time::macros::format_description!("[year]-[month]-[day]"))
                .unwrap_or_default();
            let gate = b.judge(&report, &names, &today);
            println!(
                "baseline: {} known failures tolerated, {} unlisted failures, {} stale entries",
                gate.known.len(),
                gate.unlisted.len(),
                gate.stale.len()
            );
            for s in &gate.stale {
                println!("  stale: {} ({})", s.case, s.why);
            }
            for u in &gate.unlisted {
                println!("  unlisted failure: {u}");
            }
            if gate.passes() { 0 } else { gate.unlisted.len() + gate.stale.len() }
        }
        None => report.gating_failures(),
    };
    let ending = Ending::of_run(gating, report.inconclusive());
    if ending == Ending::Success {
        // A run that proved nothing does not pass: every selected MUST case (or, with none
        // selected, every case) skipped.
        let ran = |c: &&authmd_conformance::engine::CaseResult| !matches!(c.verdict, Verdict::Skip(_) | Verdict::Inconclusive(_));
        let must: Vec<_> = report.cases.iter().filter(|c| c.level == Level::Must).collect();
        let proved = if must.is_empty() {
            report.cases.iter().any(|c| ran(&c))
        } else {
            must.iter().any(ran)
        };
        if !proved {
            return Err(Ending::NothingRan(format!(
                "no {}case could run against this target (every one was skipped: see the reasons above); a run that checked nothing does not pass",
                if must.is_empty() { "" } else { "MUST " }
            )));
        }
    }
    Ok(ending)
}

/// Whether the summary is coloured: never with `NO_COLOR` set or `CLICOLOR=0`, always with
/// `CLICOLOR_FORCE` set (not `0`), else only when stdout is a terminal.
fn colour() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if set("CLICOLOR_FORCE") {
        return true;
    }
    if std::env::var_os("CLICOLOR").is_some_and(|v| v == "0") {
        return false;
    }
    std::io::stdout().is_terminal()
}

/// `text` in the colour of `verdict`, when [`colour`] says so.
fn paint(text: &str, verdict: &str) -> String {
    let code = match verdict {
        "FAIL" => "1;31",
        "WARN" => "33",
        "INCONCLUSIVE" => "35",
        "PASS" => "32",
        _ => "",
    };
    if code.is_empty() || !colour() {
        return text.to_string();
    }
    format!("\u{1b}[{code}m{text}\u{1b}[0m")
}
