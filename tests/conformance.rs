//! Self-validation: every case passes against the bundled reference server; the catalogue lint
//! holds; `cases/INDEX.md` is current; no secret seen during the run reaches any report file.
//! One libtest-mimic trial per case, so `cargo test --test conformance -- idjag/` filters.

use std::sync::Arc;

use authmd_conformance::engine::{Harness, Verdict};
use authmd_conformance::{bundled, default_catalogue};
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
    let (report, secrets, out_dir) = runtime.block_on(async {
        let stack = bundled::start(Defects::none()).await.expect("bundled stack");
        let harness = Harness::new(stack.target.clone(), stack.idp.clone(), Some(stack.mail.clone()), None)
            .await
            .expect("discovery");
        let harness = Arc::new(harness);
        let report = authmd_conformance::run(harness.clone(), catalogue.cases.clone(), &|_, _, _| {}).await;
        let dir = std::env::temp_dir().join(format!("authmd-selftest-{}", std::process::id()));
        report.write_all(&dir, &harness.secrets).expect("write reports");
        (report, harness.secrets.clone(), dir)
    });

    let mut trials = Vec::new();
    for result in report.cases.clone() {
        trials.push(
            Trial::test(result.name.clone(), move || match &result.verdict {
                Verdict::Pass => Ok(()),
                // A reading the bundled configuration does not gate on is reported, not failed.
                Verdict::Info if result.reading.is_some() => Ok(()),
                other => Err(Failed::from(format!(
                    "{} against the reference server: {:?}\n{}",
                    other.label(),
                    other,
                    result
                        .findings
                        .iter()
                        .map(|f| format!("  {}: expected {} (found {})", f.step, f.expected, f.found))
                        .collect::<Vec<_>>()
                        .join("\n")
                ))),
            })
            .with_kind("case"),
        );
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
    libtest_mimic::run(&args, trials).exit();
}
