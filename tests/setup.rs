//! Setup as a new user meets it: `init` against a live reference server, the config edited the
//! way its comments say, then `check-config` through the real binary. `check-config` must fail
//! what would make a run lie (an issuer the target does not trust, a mail source that yields no
//! OTP) and pass a correct config, including a v0.6 one, which needs no `[mail]`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use authmd_reference_server::{Config, Defects, ReferenceServer};

mod common;
use common::{cli, scratch};

/// A loopback port nobody listens on now (the mock IdP or mailbox binds it a moment later).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A reference server trusting `trusted` and relaying mail to `smtp`, on a random port.
fn serve(runtime: &tokio::runtime::Runtime, dir: &Path, profile: &str, trusted: u16, smtp: u16, extra: &[&str]) -> ReferenceServer {
    let mut sets = vec![
        "listen=127.0.0.1:0".to_string(),
        format!("database={}", dir.join("ref.sqlite").display()),
        format!("profile={profile}"),
        format!("trusted_issuers=[{{issuer = \"http://127.0.0.1:{trusted}\"}}]"),
        format!("smtp=127.0.0.1:{smtp}"),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    let config = Config::layered(None, &sets).expect("reference config");
    runtime
        .block_on(ReferenceServer::start(config, Defects::none()))
        .expect("reference server starts")
}

/// `init` against `base`, then the edits its comments ask for: the mock IdP on `issuer_port`,
/// mail (if the profile uses it) on `mail_port`, the `[session]` skeleton switched on.
fn init_and_edit(dir: &Path, base: &str, issuer_port: u16, mail_port: u16) -> PathBuf {
    let path = dir.join("target.toml");
    let out = cli(&["init", "--target", base, "--out", path.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "init failed:\n{}", text(&out));
    let written = std::fs::read_to_string(&path).expect("init wrote the config");
    let state = dir.join("idp-state");
    let edited = written
        .replace(
            "issuer = \"http://localhost:4000\"\nlisten = \"127.0.0.1:4000\"",
            &format!(
                "issuer = \"http://127.0.0.1:{issuer_port}\"\nlisten = \"127.0.0.1:{issuer_port}\"\nstate_dir = \"{}\"",
                state.display()
            ),
        )
        .replace("127.0.0.1:2525", &format!("127.0.0.1:{mail_port}"))
        .replace("# [session]\n# login_url", "[session]\nlogin_url")
        .replace("# login_fields", "login_fields")
        .replace("# confirm_url", "confirm_url")
        .replace("# confirm_fields", "confirm_fields")
        .replace("# reveal", "reveal");
    assert_ne!(written, edited, "init's [idp] section changed shape:\n{written}");
    std::fs::write(&path, edited).expect("write edited config");
    path
}

fn check_config(path: &Path) -> Output {
    cli(&["check-config", "--config", path.to_str().expect("utf-8 path")])
}

/// The line `check-config` prints for one check.
fn line<'a>(all: &'a str, check: &str) -> &'a str {
    all.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(check))
        .unwrap_or_else(|| panic!("no `{check}` line in:\n{all}"))
}

/// init's proposals come from the answers: the same service on the other reading of C-11.
#[test]
fn init_proposes_the_reading_the_answers_follow() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = scratch("setup-readings");
    let server = serve(&runtime, &dir, "v0.1", free_port(), free_port(), &[]);
    let path = dir.join("target.toml");
    let out = cli(&["init", "--target", server.base_url(), "--out", path.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "init failed:\n{}", text(&out));
    let written = std::fs::read_to_string(&path).expect("config");
    assert!(
        written.contains("# \"C-11\" = \"required\""),
        "C-11 not proposed as observed:\n{written}"
    );
    assert!(text(&out).contains("C-11 = required"), "{}", text(&out));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_correct_v01_config_passes_and_a_wrong_issuer_or_mail_source_fails() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = scratch("setup-v01");
    let (issuer, smtp) = (free_port(), free_port());
    let server = serve(&runtime, &dir, "v0.1", issuer, smtp, &["follows=[\"C-11/defaulted\"]"]);
    let config = init_and_edit(&dir, server.base_url(), issuer, smtp);
    let written = std::fs::read_to_string(&config).expect("config");
    assert!(written.contains("[mail]"), "a v0.1 config needs [mail]:\n{written}");
    // init proposes what it saw the target do, commented out: this server defaults a missing
    // credential type (C-11), where the bundled default requires it.
    assert!(
        written.contains("# \"C-11\" = \"defaulted\""),
        "C-11 not proposed as observed:\n{written}"
    );
    assert!(!written.contains("\n[readings]"), "init declared a reading:\n{written}");

    // The control: as init wrote it, edited as its comments say, every check holds.
    let out = check_config(&config);
    let all = text(&out);
    assert!(out.status.success(), "a correct v0.1 config failed:\n{all}");
    for check in ["idp-trusted", "idp-untrusted-refused", "mail-otp"] {
        assert!(line(&all, check).starts_with("ok"), "{check} did not hold:\n{all}");
    }

    // `check-config` of the config with one port moved elsewhere: it must fail (exit 2).
    let moved = |name: &str, port: u16| {
        let path = dir.join(format!("{name}.toml"));
        let edited = written.replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:{}", free_port()));
        std::fs::write(&path, edited).expect("write");
        let out = check_config(&path);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{name} passed:\n{all}");
        all
    };
    // The mock IdP on an issuer the target does not trust: the minted ID-JAG is refused.
    let all = moved("untrusted-issuer", issuer);
    assert!(line(&all, "idp-trusted").starts_with("FAIL"), "{all}");

    // Mail read where the target does not send it: no OTP, so the claim cases could not run.
    let all = moved("mail-elsewhere", smtp);
    assert!(line(&all, "mail-otp").starts_with("FAIL"), "{all}");
    assert!(line(&all, "idp-trusted").starts_with("ok"), "{all}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_correct_v06_config_passes_without_mail() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = scratch("setup-v06");
    let (issuer, smtp) = (free_port(), free_port());
    let server = serve(&runtime, &dir, "v0.6", issuer, smtp, &[]);
    let config = init_and_edit(&dir, server.base_url(), issuer, smtp);
    let written = std::fs::read_to_string(&config).expect("config");
    assert!(written.contains("profile = \"v0.6\""), "init wrote another profile:\n{written}");
    assert!(!written.contains("[mail]"), "a v0.6 config needs no [mail]:\n{written}");
    assert!(written.contains("[session]"), "init wrote no [session] skeleton:\n{written}");

    let out = check_config(&config);
    let all = text(&out);
    assert!(out.status.success(), "a correct v0.6 config failed:\n{all}");
    for check in ["idp-trusted", "idp-untrusted-refused", "session-confirm"] {
        assert!(line(&all, check).starts_with("ok"), "{check} did not hold:\n{all}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_correct_production_dialect_config_reads_the_code_back() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = scratch("setup-v07p");
    let (issuer, smtp) = (free_port(), free_port());
    let server = serve(&runtime, &dir, "v0.7-production", issuer, smtp, &[]);
    let config = init_and_edit(&dir, server.base_url(), issuer, smtp);
    let written = std::fs::read_to_string(&config).expect("config");
    assert!(
        written.contains("profile = \"v0.7-production\""),
        "init wrote another profile (the metadata lists only the JWT-bearer grant):\n{written}"
    );
    assert!(
        written.contains("reveal = '"),
        "init wrote no read-back [session] skeleton:\n{written}"
    );

    let out = check_config(&config);
    let all = text(&out);
    assert!(out.status.success(), "a correct production-dialect config failed:\n{all}");
    for check in ["idp-trusted", "idp-untrusted-refused", "session-reveal"] {
        assert!(line(&all, check).starts_with("ok"), "{check} did not hold:\n{all}");
    }
    assert!(
        !all.contains("session-confirm"),
        "the typed-code check ran for the read-back ceremony:\n{all}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
