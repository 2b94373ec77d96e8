//! `authmd-conformance`: run the auth.md conformance suite, list and explain cases, and start
//! the mock IdP, mock mailbox or reference server on their own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use authmd_conformance::Filter;
use authmd_conformance::catalogue::{Catalogue, Level};
use authmd_conformance::exit_code::Ending;
use authmd_conformance::target::TargetConfig;
use authmd_mock_idp::{MockIdp, ServeArgs};
use authmd_mock_mailbox::Mailbox;
use authmd_reference_server::{Config, Defect, Defects, ReferenceServer};
use clap::{Args, Parser, Subcommand};

mod run;

#[derive(Parser)]
#[command(
    name = "authmd-conformance",
    version,
    about = "Conformance suite for auth.md agent registration (profile v0.1)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the suite: against the bundled reference server, or `--target URL --config FILE`.
    Run(RunArgs),
    /// Probe a live target and write a commented target.toml (discovery, oracle, TTLs).
    Init {
        /// The target's base URL.
        #[arg(long)]
        target: String,
        /// Where to write the configuration (never overwritten).
        #[arg(long, default_value = "target.toml")]
        out: PathBuf,
        /// The spec profile to write the config for; defaults to the one the metadata speaks.
        #[arg(long)]
        profile: Option<String>,
    },
    /// Validate a target configuration against the live target before a run.
    CheckConfig {
        /// The target configuration (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Check every profile's catalogue without any server: every case parses with typed
    /// parameters, names real requirements and real reference-server defects, and the generated
    /// indexes, schema and vocabulary are current.
    Lint,
    /// List the cases the filters select.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// The spec profile whose catalogue to list (default v0.1), or `aid` for the AID preflight's.
        #[arg(long)]
        profile: Option<String>,
    },
    /// Explain one case: requirement text, source, steps, expectations, defects.
    Explain {
        /// Case id or `area/id`.
        case: String,
        /// The spec profile whose catalogue holds the case (default v0.1), or `aid`.
        #[arg(long)]
        profile: Option<String>,
    },
    /// The mock identity provider.
    Idp {
        #[command(subcommand)]
        command: IdpCommand,
    },
    /// The mock mailbox (SMTP sink).
    Mailbox {
        #[command(subcommand)]
        command: MailboxCommand,
    },
    /// The reference server.
    Reference {
        #[command(subcommand)]
        command: ReferenceCommand,
    },
    /// A loopback DNS server for AID records.
    Dns {
        #[command(subcommand)]
        command: DnsCommand,
    },
    /// Known-failure baselines.
    Baseline {
        #[command(subcommand)]
        command: BaselineCommand,
    },
    /// Compare JSON reports (several servers, or one over time): a matrix per case and reading.
    Compare {
        /// Two or more `report.json` files.
        #[arg(required = true, num_args = 2..)]
        reports: Vec<PathBuf>,
        /// Where to write `comparison.md` and `comparison.html`. Defaults to the current directory.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// What changed between two runs: new failures, fixes, changed evidence.
    Diff {
        /// The earlier `report.json`.
        before: PathBuf,
        /// The later `report.json`.
        after: PathBuf,
    },
}

#[derive(Subcommand)]
enum DnsCommand {
    /// Serve an RFC 1035 zone file over UDP and TCP until Ctrl-C.
    Serve {
        /// The zone file (e.g. `examples/authmd.test.zone`).
        #[arg(long)]
        zone: PathBuf,
        /// The zone's origin where the file has no `$ORIGIN`.
        #[arg(long)]
        origin: Option<String>,
        /// Listen address (UDP and TCP).
        #[arg(long, default_value = "127.0.0.1:5353")]
        listen: SocketAddr,
    },
}

#[derive(Subcommand)]
enum BaselineCommand {
    /// Write a baseline listing every FAIL of a report.
    Write {
        /// The `report.json` to read.
        #[arg(long)]
        report: PathBuf,
        /// The baseline file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args, Clone, Default)]
struct FilterArgs {
    /// Case id, `area/id` or requirement glob (repeatable), e.g. `idjag/*` or `IDJAG-2?`.
    #[arg(long = "case", short = 'c')]
    cases: Vec<String>,
    /// Area (repeatable): discovery, registration, idjag, credential, matching, claim, revocation, api, expiry, rate, security.
    #[arg(long = "area")]
    areas: Vec<String>,
    /// Level (repeatable): MUST, SHOULD, MAY, informational.
    #[arg(long = "level")]
    levels: Vec<String>,
}

#[derive(Args)]
pub(crate) struct RunArgs {
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
    /// Which conforming deployment of the bundled reference server: standard, alternates
    /// (other error names, oracle shape, HTML outbox mail, `aud` = resource, a JWKS cool-down)
    /// or no-clock (short TTLs, no clock header).
    #[arg(long)]
    variant: Option<String>,
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

#[derive(Subcommand)]
enum IdpCommand {
    /// Serve the mock IdP with its HTTP control API.
    Serve(ServeArgs),
}

#[derive(Subcommand)]
enum MailboxCommand {
    /// Serve the SMTP sink and print every message received.
    Serve {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:2525")]
        listen: SocketAddr,
    },
}

#[derive(Subcommand)]
enum ReferenceCommand {
    /// Serve the reference server.
    Serve {
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Any configuration key, `key=value` (repeatable; overrides the file and AUTHMD_REF_*).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Listen address (shorthand for `--set listen=ADDR`).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// SQLite file (shorthand for `--set database=FILE`).
        #[arg(long)]
        database: Option<PathBuf>,
        /// SMTP relay for claim mail (shorthand for `--set smtp=HOST:PORT`).
        #[arg(long)]
        smtp: Option<String>,
        /// Switch on a defect (repeatable).
        #[arg(long = "defect")]
        defects: Vec<String>,
        /// List the defects and exit.
        #[arg(long)]
        list_defects: bool,
        /// Request log format on stderr: human or json (filter with RUST_LOG).
        #[arg(long, default_value = "human")]
        log_format: String,
    },
    /// Print the audit events stored in a database.
    Audit {
        /// SQLite file.
        #[arg(long, default_value = "authmd-reference.sqlite")]
        database: PathBuf,
    },
}

/// A failure at the CLI edge, mapped to an exit code.
/// A command's failure: an [`Ending`] that carries its message.
pub(crate) type Failure = Ending;

fn main() -> ExitCode {
    // `list | head` closes stdout early: end quietly, as other command-line tools do, rather
    // than panic on the broken pipe.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Ending::Harness(String::new()).code() as u8);
        }
    };
    let ending = runtime.block_on(dispatch(cli.command)).unwrap_or_else(|failure| failure);
    if let Some(message) = ending.message() {
        eprintln!("error: {message}");
    }
    let code = ending.code();
    ExitCode::from(code as u8)
}

pub(crate) fn parse_filter(args: &FilterArgs, catalogue: &Catalogue) -> Result<Filter, Failure> {
    let mut levels = Vec::new();
    for l in &args.levels {
        levels.push(match l.to_ascii_lowercase().as_str() {
            "must" => Level::Must,
            "should" => Level::Should,
            "may" => Level::May,
            "informational" | "info" => Level::Informational,
            other => {
                return Err(Failure::Usage(format!(
                    "--level `{other}`: expected MUST, SHOULD, MAY or informational"
                )));
            }
        });
    }
    for a in &args.areas {
        if !catalogue.cases.iter().any(|c| &c.area == a) {
            return Err(Failure::Usage(format!("--area `{a}`: no such area")));
        }
    }
    Ok(Filter {
        ids: args.cases.clone(),
        areas: args.areas.clone(),
        levels,
    })
}

fn catalogue() -> Result<Catalogue, Failure> {
    authmd_conformance::default_catalogue().map_err(|e| Failure::Usage(format!("catalogue: {e}")))
}

/// The catalogue of `profile` (the default profile when none is named).
fn catalogue_of(profile: Option<&str>) -> Result<Catalogue, Failure> {
    match profile {
        None => catalogue(),
        // The AID preflight's catalogue, which joins any profile's run from a domain.
        Some("aid") => authmd_conformance::aid_catalogue().map_err(|e| Failure::Usage(format!("AID catalogue: {e}"))),
        Some(p) if !authmd_conformance::profiles().iter().any(|k| k == p) => Err(Failure::Usage(format!(
            "--profile {p}: this build has {}",
            authmd_conformance::profiles().join(", ")
        ))),
        Some(p) => authmd_conformance::profile_catalogue(p).map_err(|e| Failure::Usage(format!("catalogue: {e}"))),
    }
}

pub(crate) fn defects(ids: &[String]) -> Result<Defects, Failure> {
    ids.iter()
        .map(|d| d.parse::<Defect>().map_err(|e| Failure::Usage(e.to_string())))
        .collect()
}

async fn dispatch(command: Command) -> Result<Ending, Failure> {
    match command {
        Command::Run(args) => run::run(args).await,
        Command::Lint => {
            let mut problems = Vec::new();
            let mut totals = Vec::new();
            // Every profile's catalogue: it loads, its defects exist, its index is current.
            for name in authmd_conformance::profiles() {
                let cat = match authmd_conformance::profile_catalogue(&name) {
                    Ok(c) => c,
                    Err(e) => {
                        problems.push(format!("{name}: {e}"));
                        continue;
                    }
                };
                for case in &cat.cases {
                    for id in &case.caught_by {
                        if id.parse::<Defect>().is_err() {
                            problems.push(format!(
                                "{name} {}: caught_by names `{id}`, which is no reference-server defect",
                                case.full_name()
                            ));
                        }
                    }
                }
                for id in cat.missing_families() {
                    problems.push(format!(
                        "{name} {id}: an exact-match rule (`compares`) with no near-miss family: add a case whose step lists `near_miss`"
                    ));
                }
                let manifest =
                    authmd_conformance::profile::Manifest::load(&authmd_conformance::repo_root(), &name).map_err(Failure::Usage)?;
                let index = authmd_conformance::repo_root().join(&manifest.cases).join("INDEX.md");
                if std::fs::read_to_string(&index).unwrap_or_default() != cat.index_markdown() {
                    problems.push(format!("{}/INDEX.md is stale: run scripts/bless", manifest.cases.display()));
                }
                totals.push(format!(
                    "{name}: {} cases over {} requirements",
                    cat.cases.len(),
                    cat.requirements.len()
                ));
            }
            // The AID preflight's catalogue, which joins any profile's run from a domain.
            match authmd_conformance::aid_catalogue() {
                Ok(aid) => {
                    for case in &aid.cases {
                        for id in case.caught_by.iter().filter(|id| id.parse::<Defect>().is_err()) {
                            problems.push(format!(
                                "aid {}: caught_by names `{id}`, which is no reference-server defect",
                                case.full_name()
                            ));
                        }
                    }
                    let index = authmd_conformance::repo_root().join("cases-aid/INDEX.md");
                    if std::fs::read_to_string(&index).unwrap_or_default() != aid.index_markdown() {
                        problems.push("cases-aid/INDEX.md is stale: run scripts/bless".into());
                    }
                    totals.push(format!(
                        "AID preflight: {} cases over {} requirements",
                        aid.cases.len(),
                        aid.requirements.len()
                    ));
                }
                Err(e) => problems.push(format!("aid: {e}")),
            }
            for (file, text) in authmd_conformance::language::generated_files() {
                if std::fs::read_to_string(authmd_conformance::repo_root().join(file)).unwrap_or_default() != text {
                    problems.push(format!("{file} is stale: run scripts/bless"));
                }
            }
            for p in &problems {
                eprintln!("error: {p}");
            }
            if problems.is_empty() {
                println!(
                    "{}: the catalogues load, their parameters are typed, their defects exist, their indexes, the schema and the vocabulary are current",
                    totals.join("; ")
                );
                Ok(Ending::Success)
            } else {
                Err(Ending::Usage(format!("{} catalogue problem(s)", problems.len())))
            }
        }
        Command::Init { target, out, profile } => {
            if let Some(p) = profile
                .as_deref()
                .filter(|p| !authmd_conformance::profiles().iter().any(|k| k == p))
            {
                return Err(Failure::Usage(format!(
                    "--profile {p}: this build has {}",
                    authmd_conformance::profiles().join(", ")
                )));
            }
            if out.exists() {
                return Err(Failure::Usage(format!(
                    "{} exists; choose another --out or remove it",
                    out.display()
                )));
            }
            let mut probe = authmd_conformance::setup::probe(&target, profile.as_deref())
                .await
                .map_err(Failure::Harness)?;
            // Proposals only: a failed observation still leaves a usable config.
            let observed = authmd_conformance::setup::observe_readings(&mut probe).await;
            authmd_conformance::setup::write_new(&out, &authmd_conformance::setup::render(&probe)).map_err(Failure::Usage)?;
            println!("wrote {} (profile {})", out.display(), probe.profile);
            println!(
                "  discovery: {}",
                probe
                    .discovery_error
                    .as_deref()
                    .unwrap_or("PRM and authorization-server metadata found")
            );
            println!(
                "  oracle: {}",
                probe
                    .oracle
                    .as_ref()
                    .map(|(p, u, s)| format!("{p} (user {u}, scopes {s})"))
                    .unwrap_or_else(|| "not found; see the comment in the file".into())
            );
            println!(
                "  readings: {}",
                match observed {
                    Err(e) => format!("not observed ({})", authmd_conformance::redact::inert(&e, false)),
                    Ok(()) if probe.observed.is_empty() => "none observed without an IdP, mail or session".into(),
                    Ok(()) => format!(
                        "{} proposed, commented out, in [readings]",
                        probe
                            .observed
                            .iter()
                            .map(|(id, r, _)| format!("{id} = {r}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            );
            let sections = [("[idp]", true), ("[mail]", probe.uses_mail), ("[session]", probe.uses_session)]
                .iter()
                .filter(|(_, used)| *used)
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "next: edit {sections} for your deployment, then `check-config --config {}`",
                out.display()
            );
            Ok(Ending::Success)
        }
        Command::CheckConfig { config } => {
            let target = TargetConfig::load(&config).map_err(|e| Failure::Usage(e.to_string()))?;
            let checks = authmd_conformance::setup::check(&target).await;
            for c in &checks {
                println!(
                    "{} {:<22} {}",
                    c.label(),
                    c.name,
                    authmd_conformance::redact::inert(&c.detail, false)
                );
            }
            if checks.iter().all(|c| c.ok) {
                Ok(Ending::Success)
            } else {
                Err(Ending::Usage(format!(
                    "{} of {} checks failed",
                    checks.iter().filter(|c| !c.ok).count(),
                    checks.len()
                )))
            }
        }
        Command::Baseline {
            command: BaselineCommand::Write { report, out },
        } => {
            let report = authmd_conformance::compare::ReportFile::read(&report).map_err(|e| Failure::Usage(e.to_string()))?;
            let baseline = authmd_conformance::baseline::Baseline::from_report(&report);
            std::fs::write(&out, baseline.to_toml()).map_err(|e| Failure::Usage(format!("--out {}: {e}", out.display())))?;
            println!("{} known failures written to {}", baseline.known_failures.len(), out.display());
            Ok(Ending::Success)
        }
        Command::Compare { reports, out } => {
            let files = reports
                .iter()
                .map(|p| authmd_conformance::compare::ReportFile::read(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Failure::Usage(e.to_string()))?;
            let (md, html) = authmd_conformance::compare::matrix(&files);
            std::fs::create_dir_all(&out).map_err(|e| Failure::Usage(format!("--out {}: {e}", out.display())))?;
            std::fs::write(out.join("comparison.md"), &md).map_err(|e| Failure::Usage(e.to_string()))?;
            std::fs::write(out.join("comparison.html"), html).map_err(|e| Failure::Usage(e.to_string()))?;
            println!("{md}");
            Ok(Ending::Success)
        }
        Command::Diff { before, after } => {
            let a = authmd_conformance::compare::ReportFile::read(&before).map_err(|e| Failure::Usage(e.to_string()))?;
            let b = authmd_conformance::compare::ReportFile::read(&after).map_err(|e| Failure::Usage(e.to_string()))?;
            authmd_conformance::compare::same_profile(&[a.clone(), b.clone()]).map_err(Failure::Usage)?;
            let d = authmd_conformance::compare::diff(&a, &b);
            print!("{}", d.render());
            Ok(if d.new_failures.is_empty() {
                Ending::Success
            } else {
                Ending::Conformance
            })
        }
        Command::List { filter: args, profile } => {
            let cat = catalogue_of(profile.as_deref())?;
            let filter = parse_filter(&args, &cat)?;
            let selected: Vec<_> = cat.cases.iter().filter(|c| filter.selects(c)).collect();
            let width = selected.iter().map(|c| c.full_name().len()).max().unwrap_or(0);
            for c in &selected {
                println!(
                    "{:<width$}  {:<13} {}  [{}]",
                    c.full_name(),
                    c.level.as_str(),
                    c.summary,
                    c.requirements.join(", ")
                );
            }
            Ok(if selected.is_empty() {
                Ending::NothingSelected
            } else {
                Ending::Success
            })
        }
        Command::Explain { case, profile } => {
            let cat = catalogue_of(profile.as_deref())?;
            let c = cat
                .cases
                .iter()
                .find(|c| c.id == case || c.full_name() == case)
                .ok_or_else(|| Failure::Usage(format!("no case `{case}` (see `list`)")))?;
            println!("{}\n  {}\n  level: {}", c.full_name(), c.summary, c.level.as_str());
            if let Some(authmd_conformance::catalogue::Condition::ClientIdList) = c.must_when {
                println!("  level: MUST when the target config names idp.client_ids");
            }
            if let Some(r) = &c.reading {
                println!("  reading: {r}");
            }
            for r in &c.requirements {
                if let Some(req) = cat.requirements.get(r) {
                    println!("\n{r} ({})\n  {}\n  source: {}", req.level.as_str(), req.text, req.source);
                }
            }
            let names = |v: serde_json::Value| match v {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.as_str().unwrap_or_default().to_string(),
            };
            println!(
                "\nneeds: {}\ncaught by defects: {}\n\nsteps:",
                names(serde_json::to_value(&c.needs).unwrap_or_default()),
                c.caught_by.join(", ")
            );
            for (i, s) in c.steps.iter().enumerate() {
                println!(
                    "  {}. {}{}{} {}",
                    i + 1,
                    s.action.name(),
                    s.name.as_ref().map(|n| format!(" as `{n}`")).unwrap_or_default(),
                    s.advance.as_ref().map(|a| format!(" at {a}")).unwrap_or_default(),
                    {
                        let params = s.action.params();
                        if params.is_empty() {
                            String::new()
                        } else {
                            serde_json::to_string(&params).unwrap_or_default()
                        }
                    }
                );
                if let Some(e) = &s.expect {
                    println!("     expect {}", without_defaults(serde_json::to_value(e).unwrap_or_default()));
                }
            }
            Ok(Ending::Success)
        }
        Command::Idp {
            command: IdpCommand::Serve(args),
        } => {
            let token_file = args.token_file.clone();
            let idp = MockIdp::start(args.into_config().map_err(Failure::Usage)?)
                .await
                .map_err(|e| Failure::Usage(e.to_string()))?;
            println!("{}", idp.banner(&token_file));
            wait_for_ctrl_c().await;
            Ok(Ending::Success)
        }
        Command::Dns {
            command: DnsCommand::Serve { zone, origin, listen },
        } => {
            let text = std::fs::read_to_string(&zone).map_err(|e| Failure::Usage(format!("--zone {}: {e}", zone.display())))?;
            let parsed =
                authmd_dns::Zone::parse(&text, origin.as_deref()).map_err(|e| Failure::Usage(format!("--zone {}: {e}", zone.display())))?;
            let (origin, records) = (parsed.origin(), parsed.len());
            let server = authmd_dns::DnsServer::start(parsed, listen).await.map_err(Failure::Usage)?;
            println!("DNS: zone {origin} ({records} records) on {} (udp and tcp)", server.addr());
            wait_for_ctrl_c().await;
            Ok(Ending::Success)
        }
        Command::Mailbox {
            command: MailboxCommand::Serve { listen },
        } => {
            let mailbox = Mailbox::start(listen).await.map_err(|e| Failure::Usage(e.to_string()))?;
            println!("mock mailbox: SMTP on {}", mailbox.addr());
            // Woken by arrivals, not by a timer; only what is new is copied, and a sender's
            // subject or address never reaches the terminal as an escape sequence.
            let (mut next, mut dropped) = (0, 0);
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = mailbox.arrival_after(next) => {
                        let (messages, received) = mailbox.messages_from(next);
                        for m in &messages {
                            println!(
                                "mail to {}: {}",
                                authmd_conformance::redact::inert(&m.to.join(", "), false),
                                authmd_conformance::redact::inert(&m.subject, false)
                            );
                        }
                        let (_, now_dropped) = mailbox.counts();
                        if now_dropped > dropped {
                            println!("({} older messages dropped to stay within the mailbox's memory)", now_dropped - dropped);
                            dropped = now_dropped;
                        }
                        next = received;
                    }
                }
            }
            Ok(Ending::Success)
        }
        Command::Reference {
            command:
                ReferenceCommand::Serve {
                    config,
                    mut sets,
                    listen,
                    database,
                    smtp,
                    defects: ids,
                    list_defects,
                    log_format,
                },
        } => {
            if list_defects {
                for d in Defect::ALL {
                    println!("{:<40} {}", d.id(), d.describe());
                }
                return Ok(Ending::Success);
            }
            sets.extend(listen.map(|l| format!("listen={l}")));
            sets.extend(database.map(|d| format!("database={}", d.display())));
            sets.extend(smtp.map(|s| format!("smtp={s}")));
            let cfg = Config::layered(config.as_deref(), &sets).map_err(|e| Failure::Usage(e.to_string()))?;
            authmd_reference_server::init_logging(&log_format).map_err(Failure::Usage)?;
            let server = ReferenceServer::start(cfg, defects(&ids)?)
                .await
                .map_err(|e| Failure::Usage(e.to_string()))?;
            println!("reference server listening on {}", server.base_url());
            // The AID records, as zone-file lines to paste into the zone `dns serve` serves.
            for r in server.aid_records() {
                let strings: Vec<String> = r
                    .txt
                    .as_bytes()
                    .chunks(255)
                    .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
                    .collect();
                println!("AID record: {}. {} IN TXT {}", r.owner, r.ttl, strings.join(" "));
            }
            wait_for_ctrl_c().await;
            Ok(Ending::Success)
        }
        Command::Reference {
            command: ReferenceCommand::Audit { database },
        } => {
            if !database.exists() {
                return Err(Failure::Usage(format!("--database {}: no such file", database.display())));
            }
            let events = authmd_reference_server::audit_events(&database)
                .await
                .map_err(|e| Failure::Usage(e.to_string()))?;
            for e in events {
                println!("{e}");
            }
            Ok(Ending::Success)
        }
    }
}

async fn wait_for_ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

/// An expectation as written: members left at their defaults (null, false, empty) are dropped.
fn without_defaults(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .filter(|(_, v)| match v {
                    serde_json::Value::Null | serde_json::Value::Bool(false) => false,
                    serde_json::Value::Array(a) => !a.is_empty(),
                    serde_json::Value::Object(o) => !o.is_empty(),
                    _ => true,
                })
                .collect(),
        ),
        other => other,
    }
}
