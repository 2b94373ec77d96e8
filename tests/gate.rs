//! The CI gate and report reading, on real reports from the reference server with and without
//! defects.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod common;
use common::validate;

use authmd_conformance::baseline::Baseline;
use authmd_conformance::compare::{self, ReportFile};
use authmd_conformance::engine::{Harness, Parts};
use authmd_conformance::outcome::{SkipReason, Verdict};
use authmd_conformance::redact::Secrets;
use authmd_conformance::report::Report;
use authmd_conformance::{Filter, bundled, default_catalogue};
use authmd_reference_server::{Defect, Defects};

async fn run(defects: &[Defect], dir: &Path) -> (Report, PathBuf) {
    let catalogue = default_catalogue().expect("catalogue");
    let filter = Filter {
        areas: vec!["idjag".into(), "discovery".into()],
        ..Filter::default()
    };
    let cases = catalogue.cases.into_iter().filter(|c| filter.selects(c)).collect();
    let stack = bundled::start(defects.iter().copied().collect::<Defects>()).await.expect("stack");
    let harness = Arc::new(
        Harness::build(Parts::new(stack.target.clone(), stack.idp.clone()).mail(stack.mail.clone()))
            .await
            .expect("harness"),
    );
    let report = authmd_conformance::run(harness.clone(), cases, &|_, _, _| {}).await;
    report.write_to(dir, &harness.secrets).expect("write");
    (report, dir.join("report.json"))
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("authmd-gate-{}-{name}", std::process::id()))
}

fn all_names() -> BTreeSet<String> {
    default_catalogue()
        .expect("catalogue")
        .cases
        .iter()
        .map(|c| c.full_name())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_baseline_tolerates_listed_failures_and_fails_when_an_entry_goes_stale() {
    let (bad, bad_path) = run(&[Defect::AcceptMissingExp, Defect::SkipReplayCheck], &tmp("bad")).await;
    let (good, good_path) = run(&[], &tmp("good")).await;
    let bad_file = ReportFile::read(&bad_path).expect("read bad");
    let baseline = Baseline::from_report(&bad_file);
    assert_eq!(baseline.known_failures.len(), bad.gating_failures());
    assert!(baseline.known_failures.iter().all(|k| !k.reason.is_empty()));

    // Written, read back, and judged.
    let file = tmp("baseline.toml");
    std::fs::write(&file, baseline.to_toml()).expect("write");
    let baseline = Baseline::load(&file).expect("load");
    let names = all_names();
    assert!(baseline.judge(&bad, &names, "2026-01-01").passes(), "listed failures are tolerated");

    // JUnit: the baseline's failures are skipped with its reason; WARN, INCONCLUSIVE and SKIP
    // are visible; target text that XML cannot carry is made harmless; every file is valid.
    let mut tolerated = bad.clone();
    tolerated.known_failures = baseline.known_failures.iter().map(|k| (k.case.clone(), k.reason.clone())).collect();
    let nasty = "\u{1}]]></failure><x a=\"b\">&amp;\u{fffe}";
    let mut finding = authmd_conformance::outcome::Finding::new(
        "step 1",
        authmd_conformance::outcome::FindingKind::UnexpectedStatus,
        "a header",
        nasty,
    );
    finding.level = Some(authmd_conformance::catalogue::Level::Should);
    let passing: Vec<usize> = (0..tolerated.cases.len())
        .filter(|i| tolerated.cases[*i].verdict == Verdict::Pass)
        .take(3)
        .collect();
    tolerated.cases[passing[0]].verdict = Verdict::Warn;
    tolerated.cases[passing[0]].findings = vec![finding];
    tolerated.cases[passing[1]].verdict = Verdict::Inconclusive(format!("no answer: {nasty}"));
    tolerated.cases[passing[2]].verdict = Verdict::Skip(SkipReason::NotOffered(nasty.into()));
    let junit = tolerated.to_junit(&Secrets::default());
    assert!(!junit.contains("<failure"), "a listed failure is not a failure: {junit}");
    assert_eq!(junit.matches("known failure (baseline)").count(), baseline.known_failures.len());
    assert!(junit.contains(&format!("<property name=\"warn\" value=\"{}\"/>", tolerated.cases[passing[0]].id)));
    assert!(junit.contains("<system-out>WARN "), "{junit}");
    assert!(junit.contains("<error type=\"INCONCLUSIVE\""), "{junit}");
    assert!(!junit.contains("]]></failure>") && !junit.contains('\u{1}'));
    let xml = tmp("tolerated.xml");
    std::fs::write(&xml, &junit).expect("write");
    for junit in [xml.clone(), tmp("bad").join("junit.xml"), tmp("good").join("junit.xml")] {
        common::assert_valid_junit(&junit);
    }
    let _ = std::fs::remove_file(xml);
    // A failure's text carries the evidence: its findings, its exchanges and where the report is.
    let failed = bad.to_junit(&Secrets::default());
    assert!(failed.contains("<failure type=\"MUST\" message=\"step 1: expected"), "{failed}");
    assert!(failed.contains("exchanges:\n  step 1: POST http://"), "{failed}");
    assert!(
        failed.contains("full evidence: report.html and report.json, case idjag/"),
        "{failed}"
    );

    let stale = baseline.judge(&good, &names, "2026-01-01");
    assert!(!stale.passes());
    assert_eq!(stale.stale.len(), baseline.known_failures.len(), "every fixed case is stale");

    let mut gone = baseline.clone();
    gone.known_failures[0].case = "idjag/no-such-case".into();
    assert!(
        gone.judge(&bad, &names, "2026-01-01")
            .stale
            .iter()
            .any(|s| s.why.contains("no longer exists"))
    );

    let mut expired = baseline.clone();
    expired.known_failures[0].expires = Some("2025-12-31".into());
    assert!(
        expired
            .judge(&bad, &names, "2026-01-01")
            .stale
            .iter()
            .any(|s| s.why.contains("expired"))
    );

    let partial = Baseline {
        known_failures: baseline.known_failures[1..].to_vec(),
    };
    assert_eq!(
        partial.judge(&bad, &names, "2026-01-01").unlisted.len(),
        1,
        "an unlisted failure fails the run"
    );

    // diff and compare on the same pair.
    let good_file = ReportFile::read(&good_path).expect("read good");
    let d = compare::diff(&good_file, &bad_file);
    assert_eq!(d.new_failures.len(), bad.gating_failures());
    assert!(d.fixes.is_empty());
    let back = compare::diff(&bad_file, &good_file);
    assert_eq!(back.fixes.len(), bad.gating_failures());
    let (mut named_good, mut named_bad) = (good_file.clone(), bad_file.clone());
    named_good.name = Some("fixed".into());
    named_bad.name = Some("broken".into());
    let (md, html) = compare::matrix(&[named_good.clone(), named_bad.clone()], false);
    // Columns by label, the differing rows first, then the rows that agree.
    assert!(md.contains("| case | fixed | broken |"), "{md}");
    let differ = md.find("## Cases where the reports differ").expect("differ section");
    let agree = md.find("## Cases where they agree").expect("agree section");
    let row = md
        .find("| `v0.1/idjag/idjag-22-exp-missing` | PASS | FAIL |")
        .expect("the differing row");
    assert!(differ < row && row < agree, "{md}");
    assert!(md[agree..].contains("| PASS | PASS |"), "{md}");
    // The ambiguity matrix: both runs follow C-01 reading B (same server, same config), named
    // with its statement; Markdown code in HTML is <code>, never raw backticks.
    assert!(
        md.contains("| C-01 ID-JAG `aud`: the resource, or the authorization server? | B: `aud` is the authorization server | B: `aud` is the authorization server |"),
        "{md}"
    );
    assert!(
        html.contains("<th>fixed</th><th>broken</th>") && html.contains("class=\"split\""),
        "{html}"
    );
    assert!(html.contains("<code>aud</code>") && !html.contains('`'), "{html}");
    // Only the differences: no agreeing case, no ambiguity both follow alike.
    let (only, _) = compare::matrix(&[named_good, named_bad], true);
    assert!(only.contains("idjag-22-exp-missing") && !only.contains("| PASS | PASS |"), "{only}");
    assert!(!only.contains("| C-01 "), "{only}");

    // Reports of two profiles stand side by side: the same case name under another profile is
    // another row, never merged into one.
    let mut other = good_file.clone();
    other.report.header.profile = "v0.7".into();
    let (mixed, _) = compare::matrix(&[good_file.clone(), other.clone()], false);
    assert!(mixed.contains("| `v0.1/idjag/idjag-22-exp-missing` | PASS | — |"), "{mixed}");
    assert!(mixed.contains("| `v0.7/idjag/idjag-22-exp-missing` | — | PASS |"), "{mixed}");
    // A diff compares two runs of one profile only.
    assert!(
        compare::same_profile(&[good_file, other])
            .unwrap_err()
            .contains("different spec profiles")
    );
    for d in [tmp("bad"), tmp("good")] {
        let _ = std::fs::remove_dir_all(d);
    }
    let _ = std::fs::remove_file(file);
}

#[test]
fn bad_baselines_are_config_errors_naming_the_entry() {
    let cases = [
        ("no reason", "[[known-failure]]\ncase = \"a/b\"\nreason = \" \"\n", "`reason`"),
        (
            "bad date",
            "[[known-failure]]\ncase = \"a/b\"\nreason = \"r\"\nexpires = \"soon\"\n",
            "`expires`",
        ),
        (
            "twice",
            "[[known-failure]]\ncase = \"a/b\"\nreason = \"r\"\n[[known-failure]]\ncase = \"a/b\"\nreason = \"r\"\n",
            "twice",
        ),
        ("unknown key", "[[known-failure]]\ncase = \"a/b\"\nreason = \"r\"\nwhy = 1\n", "why"),
    ];
    for (name, text, needle) in cases {
        let file = tmp(&format!("bad-{}.toml", name.replace(' ', "-")));
        std::fs::write(&file, text).expect("write");
        let error = Baseline::load(&file).expect_err(name).to_string();
        assert!(
            error.contains(needle) && error.contains(&file.display().to_string()),
            "{name}: {error}"
        );
        let _ = std::fs::remove_file(file);
    }
}

#[test]
fn files_that_are_not_whole_reports_are_refused_by_name() {
    let cases = [
        ("not-json", "hello", "not a JSON report"),
        ("not-ours", "{\"a\": 1}", "no header.schema_version"),
        ("future", "{\"header\": {\"schema_version\": 2}}", "schema version 2"),
        ("no-footer", "{\"header\": {\"schema_version\": 1}, \"cases\": []}", "no footer"),
    ];
    for (name, text, needle) in cases {
        let file = tmp(&format!("{name}.json"));
        std::fs::write(&file, text).expect("write");
        let error = ReportFile::read(&file).expect_err(name).to_string();
        assert!(
            error.contains(needle) && error.contains(&file.display().to_string()),
            "{name}: {error}"
        );
        let _ = std::fs::remove_file(file);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_conform_to_the_published_schema() {
    let (_, path) = run(&[Defect::SkipReplayCheck], &tmp("schema")).await;
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/schema/report-v1.json")).expect("schema"),
    )
    .expect("json");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("report")).expect("json");
    assert!(
        report["footer"]["counts"]["FAIL"].as_u64().unwrap_or(0) > 0,
        "the sample run has failures with findings"
    );
    let mut errors = Vec::new();
    validate(&schema, &report, "", &mut errors);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The JUnit files too: this run's, and the golden full run's (`reports/golden/`).
    common::assert_valid_junit(&tmp("schema").join("junit.xml"));
    common::assert_valid_junit(&Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/golden/junit.xml"));
    // The validator is not vacuous: a broken report is caught.
    let mut broken = report.clone();
    broken["cases"][0]["verdict"] = serde_json::json!("MAYBE");
    broken["footer"].as_object_mut().expect("footer").remove("total");
    let mut errors = Vec::new();
    validate(&schema, &broken, "", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:?}");
    let _ = std::fs::remove_dir_all(tmp("schema"));
}

#[test]
fn the_harness_crate_cannot_reach_the_reference_server() {
    // The rule "the engine never imports the reference server" is held by Cargo: the harness
    // crate lists no dependency on it (CI also checks the whole tree with `cargo tree`).
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("harness/Cargo.toml")).expect("manifest");
    assert!(
        !manifest.contains("reference-server"),
        "harness/Cargo.toml names the reference server"
    );
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("harness/src")];
    let mut files = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("sources") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).expect("source");
            assert!(
                !text.contains("authmd_reference_server"),
                "{} names the reference server",
                path.display()
            );
        }
    }
    assert!(files > 20, "only {files} harness sources found");
}
