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

/// The summary's verdicts are coloured only where colour is wanted: `CLICOLOR_FORCE` forces
/// it, `NO_COLOR` always wins, and a pipe (these tests) gets none.
#[test]
fn colour_follows_no_color_and_clicolor() {
    let dir = std::env::temp_dir().join(format!("authmd-cli-colour-{}", std::process::id()));
    let run = |env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_authmd-conformance"));
        c.args(["run", "--case", "idjag-22-exp-missing", "--defect", "accept-missing-exp", "--out"])
            .arg(&dir)
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE");
        for (k, v) in env {
            c.env(k, v);
        }
        String::from_utf8_lossy(&c.output().expect("run").stdout).into_owned()
    };
    let red = "\u{1b}[1;31mFAIL";
    assert!(run(&[("CLICOLOR_FORCE", "1")]).contains(red), "forced colour");
    assert!(
        !run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).contains('\u{1b}'),
        "NO_COLOR wins"
    );
    let piped = run(&[]);
    assert!(piped.contains("FAIL") && !piped.contains('\u{1b}'), "no colour into a pipe");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definition() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = stdout(&cli(&["completions", shell]));
        assert!(out.contains("authmd-conformance") && out.contains("check-config"), "{shell}");
    }
    let man = stdout(&cli(&["man"]));
    assert!(man.contains(".TH authmd-conformance 1") && man.contains("check\\-config"), "{man}");
    assert_eq!(cli(&["completions", "tcsh"]).status.code(), Some(2));
}

/// A case that lets a TTL pass in real time says so in a log (no terminal): what it waits for
/// and how long is left, once, after two seconds; the run still ends with the case's verdict.
#[test]
fn a_long_wait_says_what_it_waits_for() {
    let dir = std::env::temp_dir().join(format!("authmd-cli-wait-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_authmd-conformance"))
        .args(["run", "--variant", "no-clock", "--case", "api-03-expired-access-token", "--out"])
        .arg(&dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let waits: Vec<_> = stderr.lines().filter(|l| l.starts_with("[waiting]")).collect();
    assert_eq!(waits.len(), 1, "{stderr}");
    assert!(
        waits[0].starts_with("[waiting] api-03-expired-access-token: the target's clock to pass +") && waits[0].ends_with(" s left)"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A binary installed alone (an installer, `cargo install`) carries its catalogues: copied
/// away from this checkout, it unpacks them into its cache folder and runs the suite from
/// there.
#[test]
fn a_binary_alone_unpacks_its_own_catalogues() {
    let base = std::env::temp_dir().join(format!("authmd-cli-alone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(base.join("bin")).expect("dir");
    let bin = base.join("bin/authmd-conformance");
    std::fs::copy(env!("CARGO_BIN_EXE_authmd-conformance"), &bin).expect("copy");
    let alone = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .env_remove("AUTHMD_CONFORMANCE_HOME")
            .env("XDG_CACHE_HOME", base.join("cache"))
            .env("NO_COLOR", "1")
            .output()
            .expect("run the copy")
    };
    let listed = stdout(&alone(&["list", "--area", "discovery"]));
    assert!(listed.contains("discovery/"), "{listed}");
    let unpacked: Vec<_> = std::fs::read_dir(base.join("cache/authmd-conformance"))
        .expect("the cache folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(unpacked.len(), 1, "{unpacked:?}");
    assert!(unpacked[0].join("profiles/v0.1.toml").is_file() && unpacked[0].join("cases-aid").is_dir());
    let out = base.join("reports");
    let ran = alone(&["run", "--case", "idjag-22-exp-missing", "--out", out.to_str().expect("utf-8")]);
    assert_eq!(ran.status.code(), Some(0), "{}", String::from_utf8_lossy(&ran.stderr));
    let _ = std::fs::remove_dir_all(&base);
}
