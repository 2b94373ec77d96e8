//! Hostile and broken targets. Each test serves one misbehaviour from a raw tokio socket
//! server (no HTTP library on the target side, so the bytes are exactly the ones written),
//! runs the real CLI against it as a user would, and asserts what a conformance harness owes
//! its users: no panic, a report holding every selected case, bounded memory and report size,
//! no planted secret in any output, inert terminal text, and the documented exit code.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

mod hostile_target;

use hostile_target::{Misbehaviour, PLANTED, Target, start};

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    peak_rss_kib: u64,
    out: PathBuf,
    elapsed: Duration,
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("authmd-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs the CLI against `addr` and watches its peak RSS (VmHWM) until it exits.
fn run_cli(name: &str, addr: SocketAddr) -> Outcome {
    let dir = scratch(name);
    let config = dir.join("target.toml");
    std::fs::write(
        &config,
        format!("base_url = \"http://{addr}\"\nrequest_timeout_secs = 2\ncase_timeout_secs = 20\n[oracle]\npath = \"/api/resource\"\n"),
    )
    .expect("config");
    let out = dir.join("out");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_authmd-conformance"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the CLI");
    let pid = child.id();
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stdout_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut s);
        s
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut s);
        s
    });
    let mut peak = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(240), "the run did not end");
        std::thread::sleep(Duration::from_millis(10));
    };
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout_reader.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr_reader.join().unwrap_or_default()).into_owned(),
        peak_rss_kib: peak,
        out,
        elapsed: started.elapsed(),
    }
}

fn catalogue_size() -> usize {
    authmd_conformance::default_catalogue().expect("catalogue").cases.len()
}

/// What every hostile run owes: no panic, every case in a report that is written and small,
/// bounded memory. Returns the JSON report.
fn assert_owed(o: &Outcome) -> Value {
    let context = format!("exit {}\nstderr:\n{}\nstdout:\n{}", o.code, tail(&o.stderr), tail(&o.stdout));
    assert!(!o.stderr.contains("panicked"), "a panic:\n{context}");
    assert!(o.peak_rss_kib > 0, "peak RSS was never read");
    assert!(o.peak_rss_kib < 512 * 1024, "peak RSS {} KiB\n{context}", o.peak_rss_kib);
    for file in ["report.json", "junit.xml", "summary.md", "report.html"] {
        let path = o.out.join(file);
        let size = std::fs::metadata(&path).unwrap_or_else(|_| panic!("no {file}\n{context}")).len();
        assert!(size < 64 << 20, "{file} is {size} bytes");
    }
    common::assert_valid_junit(&o.out.join("junit.xml"));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(o.out.join("report.json")).expect("read")).expect("json");
    let cases = report["cases"].as_array().expect("cases").len();
    assert_eq!(cases, catalogue_size(), "cases lost\n{context}");
    assert_eq!(report["footer"]["selected"], json!(catalogue_size()));
    report
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn verdicts(report: &Value) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for c in report["cases"].as_array().into_iter().flatten() {
        *counts.entry(c["verdict"].as_str().unwrap_or_default().to_string()).or_insert(0) += 1;
    }
    counts
}

fn every_output(o: &Outcome) -> Vec<(String, Vec<u8>)> {
    let mut all = vec![
        ("stdout".to_string(), o.stdout.clone().into_bytes()),
        ("stderr".to_string(), o.stderr.clone().into_bytes()),
    ];
    for file in ["report.json", "junit.xml", "summary.md", "report.html"] {
        all.push((file.to_string(), std::fs::read(o.out.join(file)).unwrap_or_default()));
    }
    all
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

/// Starts the target on its own runtime (kept alive by the caller) and runs the CLI.
fn hostile(name: &str, kind: Misbehaviour) -> (Outcome, Target, tokio::runtime::Runtime) {
    let rt = runtime();
    let target = rt.block_on(start(kind));
    let outcome = run_cli(name, target.addr);
    (outcome, target, rt)
}

fn assert_undecided_discovery(o: &Outcome, report: &Value) {
    assert_eq!(o.code, 3, "exit code\n{}", tail(&o.stderr));
    let v = verdicts(report);
    assert!(v.get("INCONCLUSIVE").copied().unwrap_or(0) > 0, "{v:?}");
    assert!(
        report["header"]["discovery_error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer")),
        "{}",
        report["header"]
    );
}

#[test]
fn a_stalled_discovery_is_inconclusive_with_a_report() {
    let (o, _t, _rt) = hostile("stall", Misbehaviour::Stall);
    let report = assert_owed(&o);
    assert_undecided_discovery(&o, &report);
    assert!(o.elapsed < Duration::from_secs(60), "took {:?}", o.elapsed);
}

#[test]
fn a_dripping_discovery_times_out_inconclusive() {
    let (o, _t, _rt) = hostile("drip", Misbehaviour::Drip);
    let report = assert_owed(&o);
    assert_undecided_discovery(&o, &report);
}

#[test]
fn a_short_body_is_a_transport_error_not_an_empty_200() {
    let (o, _t, _rt) = hostile("short", Misbehaviour::ShortBody);
    let report = assert_owed(&o);
    assert_undecided_discovery(&o, &report);
    let hops = report["header"]["discovery_exchanges"].as_array().expect("discovery exchanges");
    assert!(
        hops.iter().any(|e| e["error"].as_str().is_some_and(|x| x.contains("broke off"))),
        "{hops:?}"
    );
}

#[test]
fn a_header_flood_is_inconclusive_with_a_report() {
    let (o, _t, _rt) = hostile("flood", Misbehaviour::HeaderFlood);
    let report = assert_owed(&o);
    assert_undecided_discovery(&o, &report);
}

#[test]
fn a_huge_body_is_read_up_to_the_limit_only() {
    let (o, _t, _rt) = hostile("huge", Misbehaviour::HugeBody);
    let report = assert_owed(&o);
    // The cut body is evidence (not JSON, so discovery fails as the target's fault).
    assert_eq!(o.code, 1, "{}", tail(&o.stderr));
    let hops = report["header"]["discovery_exchanges"].as_array().expect("discovery exchanges");
    assert!(hops.iter().any(|e| e["truncated"] == json!(true)), "no truncated hop");
    assert!(o.elapsed < Duration::from_secs(60), "took {:?}", o.elapsed);
}

#[test]
fn a_json_depth_bomb_is_a_verdict() {
    let (o, _t, _rt) = hostile("depth", Misbehaviour::DepthBomb);
    let report = assert_owed(&o);
    assert_eq!(o.code, 1, "{}", tail(&o.stderr));
    assert!(verdicts(&report).get("FAIL").copied().unwrap_or(0) > 0);
}

#[test]
fn invalid_utf8_is_a_verdict() {
    let (o, _t, _rt) = hostile("utf8", Misbehaviour::InvalidUtf8);
    let report = assert_owed(&o);
    assert_eq!(o.code, 1, "{}", tail(&o.stderr));
    assert!(verdicts(&report).get("FAIL").copied().unwrap_or(0) > 0);
}

#[test]
fn non_ascii_credentials_lose_no_case() {
    let (o, _t, _rt) = hostile("nonascii", Misbehaviour::NonAsciiTokens);
    let report = assert_owed(&o);
    let case = report["cases"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "reg-anon-04-fresh-registrations"))
        .expect("reg-anon-04 is reported");
    assert!(!case["reason"].as_str().unwrap_or_default().contains("panic"), "{case}");
    assert!(matches!(o.code, 0 | 1), "exit {}: {}", o.code, tail(&o.stderr));
}

#[test]
fn planted_secrets_never_reach_any_output() {
    let (o, _t, _rt) = hostile("leak", Misbehaviour::LeakSecrets);
    let report = assert_owed(&o);
    assert_ne!(o.code, 3, "{}", tail(&o.stderr));
    // The registration answers were recorded (so the scan below looks at real exchanges).
    let recorded = report["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["exchanges"].as_array().into_iter().flatten())
        .any(|e| e["url"].as_str().is_some_and(|u| u.ends_with("/agent/auth")) && e["status"] == json!(201));
    assert!(recorded, "no registration exchange in the report");
    for (name, bytes) in every_output(&o) {
        let text = String::from_utf8_lossy(&bytes);
        for secret in PLANTED {
            let escaped = serde_json::to_string(secret).unwrap_or_default();
            let forms = [
                secret.to_string(),
                escaped[1..escaped.len() - 1].to_string(),
                secret.replace('&', "&amp;").replace('<', "&lt;"),
            ];
            for form in forms {
                assert!(!text.contains(&form), "{name} holds a planted secret: {form}");
            }
        }
    }
}

#[test]
fn escape_sequences_stay_inert() {
    let (o, _t, _rt) = hostile("escapes", Misbehaviour::Escapes);
    assert_owed(&o);
    for (name, bytes) in every_output(&o) {
        if name == "report.json" || name == "report.html" {
            continue; // JSON escapes control characters itself; HTML escapes on display.
        }
        assert!(!bytes.contains(&0x1b), "{name} carries an ESC byte");
        assert!(!bytes.contains(&0x07), "{name} carries a BEL byte");
    }
    let md = std::fs::read_to_string(o.out.join("summary.md")).expect("summary");
    assert!(
        !md.lines().any(|l| l.starts_with("| fake") || l.starts_with("| forged")),
        "a forged Markdown row"
    );
}

#[test]
fn urls_elsewhere_are_findings_never_fetched() {
    let (o, t, _rt) = hostile("elsewhere", Misbehaviour::Elsewhere);
    let report = assert_owed(&o);
    assert_eq!(t.elsewhere_hits.load(Ordering::SeqCst), 0, "the harness connected to another host");
    let error = report["header"]["discovery_error"].as_str().unwrap_or_default();
    assert!(error.contains("allowed_hosts"), "{error}");
    assert_ne!(o.code, 3, "{}", tail(&o.stderr));
}

/// Floods of distinct secret-looking values cost the harness memory and time in proportion to
/// what it keeps, not to what the target sends: under 512 MB (`assert_owed`) and about the
/// time of a run against a target that answers small.
#[test]
fn floods_of_distinct_secrets_and_cookies_stay_bounded() {
    let (baseline, _t, _rt) = hostile("flood-baseline", Misbehaviour::LeakSecrets);
    assert_owed(&baseline);
    for (name, kind) in [
        ("secret-flood", Misbehaviour::SecretFlood),
        ("cookie-flood", Misbehaviour::CookieFlood),
    ] {
        let (o, _t, _rt) = hostile(name, kind);
        let report = assert_owed(&o);
        assert_ne!(o.code, 3, "{name}: the harness gave up\n{}", tail(&o.stderr));
        let undecided = verdicts(&report).get("INCONCLUSIVE").copied().unwrap_or(0);
        let before = verdicts(&assert_owed(&baseline)).get("INCONCLUSIVE").copied().unwrap_or(0);
        assert!(
            undecided <= before,
            "{name}: {undecided} INCONCLUSIVE against {before} in the baseline"
        );
        assert!(
            o.elapsed < baseline.elapsed * 3 + Duration::from_secs(5),
            "{name}: {:?} against {:?} for the baseline",
            o.elapsed,
            baseline.elapsed
        );
        eprintln!(
            "{name}: {:?} (baseline {:?}), peak {} MiB (baseline {} MiB)",
            o.elapsed,
            baseline.elapsed,
            o.peak_rss_kib / 1024,
            baseline.peak_rss_kib / 1024
        );
    }
}

#[test]
fn every_misbehaviour_has_a_test() {
    // Keeps this module honest when a behaviour is added to the enum but not exercised.
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile.rs")).expect("source");
    for kind in [
        "Stall",
        "Drip",
        "HugeBody",
        "ShortBody",
        "HeaderFlood",
        "DepthBomb",
        "InvalidUtf8",
        "NonAsciiTokens",
        "LeakSecrets",
        "Escapes",
        "Elsewhere",
        "SecretFlood",
        "CookieFlood",
    ] {
        assert!(
            source.matches(&format!("Misbehaviour::{kind})")).count() >= 1,
            "{kind} is not exercised"
        );
    }
}

/// Runs the bundled suite's registration cases into `out` through `sh -c`, with `limit` as a
/// shell prefix (a ulimit), and returns (exit code, stdout, stderr).
fn bundled_run_into(out: &Path, limit: &str) -> (i32, String, String) {
    let binary = env!("CARGO_BIN_EXE_authmd-conformance");
    let script = format!("{limit} exec '{binary}' run --case 'registration/*' --out '{}'", out.display());
    let output = Command::new("sh").args(["-c", &script]).output().expect("sh");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_symlink_planted_in_the_report_folder_is_replaced_never_followed() {
    let dir = scratch("planted");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("out");
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "precious").expect("victim");
    for name in ["report.json", "report.html", "junit.xml", "summary.md"] {
        std::os::unix::fs::symlink(&victim, out.join(name)).expect("plant");
    }
    let (code, _, stderr) = bundled_run_into(&out, "");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious",
        "written through a link"
    );
    for name in ["report.json", "report.html", "junit.xml", "summary.md"] {
        let meta = std::fs::symlink_metadata(out.join(name)).expect("written");
        assert!(meta.file_type().is_file(), "{name} is still a link");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_disk_is_a_harness_error_naming_the_file_and_leaves_nothing_half_written() {
    let dir = scratch("full");
    let out = dir.join("out");
    // Files may grow to 64 KiB here: the small reports fit, report.json and report.html do not.
    // The ignored SIGXFSZ makes an over-long write fail with EFBIG, as a full disk fails one.
    let (code, stdout, stderr) = bundled_run_into(&out, "ulimit -f 128; trap '' XFSZ;");
    assert_eq!(code, 3, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("report.json"), "the failed file is not named:\n{stderr}");
    let left: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !left.iter().any(|n| n == "report.json" || n.ends_with(".tmp")),
        "half-written files: {left:?}"
    );
    assert!(
        left.iter().any(|n| n == "summary.md"),
        "the files that fit were not written: {left:?}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(!last.contains("report.json"), "the last line claims an unwritten report: {last}");
    let _ = std::fs::remove_dir_all(&dir);
}
