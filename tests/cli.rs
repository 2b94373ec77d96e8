//! The CLI's read-only commands: `list` and `explain` outputs are snapshots (review a change
//! with `INSTA_UPDATE=always cargo test --test cli`, then read the diff), and bad input gets
//! its exit code and one clear line.

use std::process::{Command, Output};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authmd-conformance"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the CLI")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn list_shows_every_case() {
    insta::assert_snapshot!(stdout(&cli(&["list"])));
}

#[test]
fn list_filters_by_area_and_level() {
    insta::assert_snapshot!(stdout(&cli(&["list", "--area", "revocation", "--level", "SHOULD"])));
}

#[test]
fn explain_an_edge_case() {
    insta::assert_snapshot!(stdout(&cli(&["explain", "idjag-20-expired"])));
}

#[test]
fn explain_a_clock_case() {
    insta::assert_snapshot!(stdout(&cli(&["explain", "expiry/exp-03-email-claim-window"])));
}

#[test]
fn an_unknown_case_is_a_usage_error() {
    let output = cli(&["explain", "no-such-case"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no case `no-such-case`"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn the_latency_rig_is_for_the_bundled_plain_run_only() {
    for args in [
        &["run", "--latency-ms", "50", "--target", "http://127.0.0.1:9"][..],
        &["run", "--latency-ms", "50", "--domain", "svc.example"][..],
        &["run", "--latency-ms", "99999"][..],
    ] {
        let output = cli(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("latency"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_filter_that_selects_nothing_exits_4() {
    let output = cli(&["list", "--case", "zzz-*"]);
    assert_eq!(output.status.code(), Some(4));
}

#[test]
fn an_unknown_area_is_a_usage_error() {
    let output = cli(&["list", "--area", "nowhere"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nowhere"), "{stderr}");
}
