//! The GitHub Action's run step (`scripts/action/run.sh`) in a fake GitHub environment: the
//! job summary, the annotations, the outputs and the exit code, against the bundled server with
//! and without a defect, and with a baseline that lists the failure.

use std::path::Path;
use std::process::Command;

mod common;
use common::scratch;

struct Step {
    code: i32,
    stdout: String,
    summary: String,
    outputs: String,
}

/// Runs the action's script as the runner would: inputs as `INPUT_*`, the runner's files.
fn run_step(dir: &Path, inputs: &[(&str, &str)]) -> Step {
    let (summary, outputs) = (dir.join("summary"), dir.join("outputs"));
    let mut command = Command::new("bash");
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/action/run.sh"))
        .current_dir(dir)
        .env("AUTHMD_BIN", env!("CARGO_BIN_EXE_authmd-conformance"))
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &outputs)
        .env("INPUT_OUT", dir.join("reports"));
    for (name, value) in inputs {
        command.env(format!("INPUT_{}", name.to_ascii_uppercase()), value);
    }
    let out = command.output().expect("bash");
    Step {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        summary: std::fs::read_to_string(summary).unwrap_or_default(),
        outputs: std::fs::read_to_string(outputs).unwrap_or_default(),
    }
}

#[test]
fn a_conforming_server_passes_with_a_summary_and_no_annotation() {
    let dir = scratch("action-pass");
    let step = run_step(&dir, &[("args", "--area discovery")]);
    assert_eq!(step.code, 0, "{}", step.stdout);
    assert!(step.summary.starts_with("# auth.md conformance: "), "{}", step.summary);
    assert!(step.outputs.contains("exit-code=0\n"), "{}", step.outputs);
    assert!(
        step.outputs.contains(&format!("report-dir={}", dir.join("reports").display())),
        "{}",
        step.outputs
    );
    assert!(
        !step.stdout.contains("::error") && !step.stdout.contains("::warning"),
        "{}",
        step.stdout
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failure_is_an_error_annotation_and_the_exit_code_unless_the_baseline_lists_it() {
    let dir = scratch("action-fail");
    let args = "--case idjag-22-exp-missing --defect accept-missing-exp";
    let step = run_step(&dir, &[("args", args)]);
    assert_eq!(step.code, 1, "{}", step.stdout);
    assert!(step.outputs.contains("exit-code=1\n"), "{}", step.outputs);
    let annotation = step
        .stdout
        .lines()
        .find(|l| l.starts_with("::error title=FAIL idjag/idjag-22-exp-missing (IDJAG-"))
        .unwrap_or_else(|| panic!("no error annotation:\n{}", step.stdout));
    // Workflow-command escaping: no raw ':' or ',' in the title after `title=`.
    let title = &annotation["::error title=".len()..annotation.rfind("::").expect("message")];
    assert!(!title.contains(':') && !title.contains(','), "{title}");
    assert!(annotation.contains("::step 1: expected status"), "{annotation}");
    assert!(step.summary.contains("idjag-22-exp-missing"), "{}", step.summary);

    // The baseline the CLI writes from that report: the job passes, the failure is a notice.
    let baseline = dir.join("known.toml");
    let written = Command::new(env!("CARGO_BIN_EXE_authmd-conformance"))
        .args(["baseline", "write", "--report"])
        .arg(dir.join("reports/report.json"))
        .arg("--out")
        .arg(&baseline)
        .output()
        .expect("baseline write");
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
    let step = run_step(&dir, &[("args", args), ("baseline", baseline.to_str().expect("utf-8"))]);
    assert_eq!(step.code, 0, "{}", step.stdout);
    assert!(
        step.stdout.contains("::notice title=FAIL idjag/idjag-22-exp-missing"),
        "{}",
        step.stdout
    );
    assert!(!step.stdout.contains("::error"), "{}", step.stdout);
    assert!(step.summary.contains("Known failures"), "{}", step.summary);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_input_is_a_usage_error_with_its_exit_code() {
    let dir = scratch("action-usage");
    let step = run_step(&dir, &[("profile", "v9.9")]);
    assert_eq!(step.code, 2, "{}", step.stdout);
    assert!(step.outputs.contains("exit-code=2\n"), "{}", step.outputs);
    let _ = std::fs::remove_dir_all(dir);
}
