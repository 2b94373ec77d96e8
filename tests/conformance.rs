//! Self-validation: every case passes against the bundled reference server, and against each of
//! its conforming variants (other error-name synonyms, oracle shape, mail source, `aud` reading,
//! JWKS cool-down, no clock header): a case tuned to one server's shapes fails here. The
//! catalogue lint holds; `cases/INDEX.md` is current; no secret seen during the run reaches any
//! report file. One libtest-mimic trial per case and variant, so `-- idjag/` filters.

use authmd_conformance::bundled::Variant;
use authmd_conformance::default_catalogue;
use authmd_conformance::engine::{CaseResult, Verdict};
use authmd_reference_server::Defects;
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let catalogue = match default_catalogue() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("catalogue: {e}");
            std::process::exit(101);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let run = |variant: Variant| {
        let cases = catalogue.cases.clone();
        async move {
            authmd_conformance::run_bundled(Defects::none(), variant, cases, None, &|_, _, _| {})
                .await
                .unwrap_or_else(|e| panic!("bundled stack ({}): {e}", variant.name()))
        }
    };
    let (report, secrets, out_dir, variants) = runtime.block_on(async {
        // The variants run at the same time as the standard stack: the no-clock one really
        // waits for its short TTLs, and the others overlap that wait.
        // AUTHMD_SELFTEST_STANDARD_ONLY=1 skips the variants (mutation testing runs the suite
        // hundreds of times; the variants guard the cases, not the server).
        let standard_only = std::env::var_os("AUTHMD_SELFTEST_STANDARD_ONLY").is_some();
        let (done, variants) = if standard_only {
            (run(Variant::Standard).await, Vec::new())
        } else {
            let (done, alternates, no_clock) = tokio::join!(run(Variant::Standard), run(Variant::Alternates), run(Variant::NoClock));
            (
                done,
                vec![(Variant::Alternates, alternates.report), (Variant::NoClock, no_clock.report)],
            )
        };
        let dir = std::env::temp_dir().join(format!("authmd-selftest-{}", std::process::id()));
        done.report.write_all(&dir, &done.secrets).expect("write reports");
        let report = done.report;
        (report, done.secrets, dir, variants)
    });
    let secrets_for_golden = secrets.clone();

    let mut trials = Vec::new();
    let judge = |label: &'static str, result: CaseResult| {
        move || match &result.verdict {
            Verdict::Pass => Ok(()),
            // A reading the bundled configuration does not gate on is reported, not failed.
            Verdict::Info if result.reading.is_some() => Ok(()),
            // A variant may lack a capability by design (no clock header); the standard run,
            // where every case must pass, exercises the case.
            Verdict::Skip(reason) if label != "standard" && reason.starts_with("needs ") => Ok(()),
            other => Err(Failed::from(format!(
                "{} against the {label} reference server: {:?}\n{}",
                other.label(),
                other,
                result
                    .findings
                    .iter()
                    .map(|f| format!("  {}: expected {} (found {})", f.step, f.expected, f.found))
                    .collect::<Vec<_>>()
                    .join("\n")
            ))),
        }
    };
    for result in report.cases.clone() {
        trials.push(Trial::test(result.name.clone(), judge("standard", result)).with_kind("case"));
    }
    for (variant, report) in variants {
        for result in report.cases {
            let name = format!("variant/{}/{}", variant.name(), result.name);
            trials.push(Trial::test(name, judge(variant.name(), result)).with_kind("variant"));
        }
    }
    let index = catalogue.index_markdown();
    trials.push(
        Trial::test("catalogue/index-is-current", move || {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/INDEX.md");
            if std::env::var_os("UPDATE_INDEX").is_some() {
                std::fs::write(&path, &index).map_err(|e| Failed::from(e.to_string()))?;
            }
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current == index {
                Ok(())
            } else {
                Err("cases/INDEX.md is stale; regenerate with UPDATE_INDEX=1 cargo test --test conformance".into())
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
    trials.push(
        Trial::test("redaction/no-secret-in-any-report-file", move || {
            let all = secrets.all();
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
    let golden_report = report.clone();
    let golden_secrets = secrets_for_golden;
    trials.push(
        Trial::test("reports/golden-reports-are-current", move || {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/golden");
            let files = [
                ("summary.md", normalise(&golden_report.to_markdown(&golden_secrets))),
                ("junit.xml", normalise(&golden_report.to_junit(&golden_secrets))),
                ("verdicts.json", verdicts(&golden_report)),
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
                Err(format!(
                    "reports/golden/{} differ; review, then bless with UPDATE_GOLDEN=1",
                    stale.join(", ")
                )
                .into())
            }
        })
        .with_kind("golden"),
    );
    libtest_mimic::run(&args, trials).exit();
}

/// Removes what differs between runs: ports, times, durations.
fn normalise(text: &str) -> String {
    let port = regex::Regex::new(r"127\.0\.0\.1:\d+").expect("regex");
    let secs = regex::Regex::new(r"in \d+(\.\d+)?s").expect("regex");
    let time = regex::Regex::new(r#"time="[0-9.]+""#).expect("regex");
    let text = port.replace_all(text, "127.0.0.1:PORT");
    let text = secs.replace_all(&text, "in Ns");
    time.replace_all(&text, r#"time="T""#).into_owned()
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
