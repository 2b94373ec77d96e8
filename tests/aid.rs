//! The AID preflight through the real CLI: `run --domain` end to end against the bundled
//! deployments (aid2 with PKA and domain binding, an AID v2.0 endpoint, aid1 with its
//! handshake, the aid1-to-aid2 migration), and bad input served by a real DNS server on loopback
//! (oversized and non-UTF-8 TXT data, duplicate keys, an unknown version, a key of the wrong
//! type, a DNS server that never answers). Each ends in a verdict and a report, never a panic,
//! and when the preflight fails no auth.md case runs against the endpoint.

use std::net::SocketAddr;
use std::path::PathBuf;

use authmd_dns::{DnsServer, Zone};

mod common;
use serde_json::Value;

/// Runs the CLI, checks what every run must hold, and returns (exit code, report).
fn run(name: &str, extra: &[&str]) -> (i32, Value) {
    let out = common::scratch(&format!("aid-{name}")).join("out");
    let out_arg = out.to_string_lossy().to_string();
    let mut args = vec!["run", "--out", out_arg.as_str()];
    args.extend_from_slice(extra);
    let output = common::cli(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{name}: the CLI panicked:\n{stderr}");
    let text = std::fs::read_to_string(out.join("report.json")).unwrap_or_else(|e| panic!("{name}: no report ({e}):\n{stderr}"));
    let report: Value = serde_json::from_str(&text).expect("report.json parses");
    assert_eq!(
        report["footer"]["total"], report["footer"]["selected"],
        "{name}: a selected case is missing from the report"
    );
    assert!(out.join("summary.md").exists() && out.join("report.html").exists());
    let errors = common::schema_errors(&report);
    assert!(errors.is_empty(), "{name}: the report departs from the schema: {errors:?}");
    (output.status.code().unwrap_or(-1), report)
}

fn verdict(report: &Value, name: &str) -> String {
    report["cases"]
        .as_array()
        .and_then(|cases| cases.iter().find(|c| c["name"] == name))
        .map(|c| c["verdict"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no case {name} in the report"))
}

/// Verdict counts of the auth.md cases (those outside the AID areas).
fn auth_md_verdicts(report: &Value) -> Vec<String> {
    report["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| !["record", "proof", "handoff"].contains(&c["area"].as_str().unwrap_or_default()))
        .map(|c| c["verdict"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn run_from_a_bare_domain_with_aid2_and_pka() {
    let (code, report) = run("aid2", &["--domain", "shop.example.test"]);
    let preflight = &report["header"]["preflight"];
    assert_eq!(preflight["name"], "_agent.shop.example.test");
    assert_eq!(preflight["selected"]["version"], "aid2");
    assert_eq!(preflight["source"], "dns");
    assert_eq!(preflight["proof"], "verified");
    assert!(preflight["error"].is_null());
    // The record named the endpoint: the run's target is the domain's https origin.
    assert!(
        report["header"]["target"]
            .as_str()
            .unwrap_or_default()
            .starts_with("https://shop.example.test:")
    );
    assert_eq!(verdict(&report, "proof/pka-05-dns-key"), "PASS");
    assert_eq!(verdict(&report, "handoff/aid-08-handoff"), "PASS");
    let passed = auth_md_verdicts(&report).iter().filter(|v| *v == "PASS").count();
    assert!(passed > 100, "only {passed} auth.md cases passed after the handoff");
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn run_from_a_bare_domain_with_aid1_and_its_handshake() {
    let (code, report) = run("aid1", &["--domain", "svc.authmd.test", "--variant", "aid1"]);
    let preflight = &report["header"]["preflight"];
    assert_eq!(preflight["selected"]["version"], "aid1");
    assert!(preflight["selected"]["pka"].as_str().unwrap_or_default().starts_with('z'));
    assert_eq!(preflight["proof"], "verified", "{preflight:#}");
    assert_eq!(verdict(&report, "record/aid-01-grammar"), "PASS");
    assert_eq!(verdict(&report, "proof/pka-05-dns-key"), "PASS");
    assert_eq!(verdict(&report, "proof/pka-10-aid1-handshake-200"), "PASS");
    assert!(auth_md_verdicts(&report).iter().filter(|v| *v == "PASS").count() > 100);
    assert_eq!(code, 0);
}

/// Each proof defect of the reference server breaks its aid1 handshake too, and the aid1 rule
/// of the case it is listed for catches it there.
#[test]
fn the_aid1_handshake_rules_catch_each_proof_defect() {
    for (defect, case) in [
        ("pka-unsigned", "proof/pka-01-signed"),
        ("pka-fewer-components", "proof/pka-02-components"),
        ("pka-stale", "proof/pka-03-fresh"),
        ("pka-keyid-not-thumbprint", "proof/pka-04-keyid-thumbprint"),
        ("pka-wrong-key", "proof/pka-05-dns-key"),
        ("pka-ignores-nonce", "proof/pka-05-dns-key"),
        ("pka-replays", "proof/pka-07-no-replay"),
    ] {
        let (_, report) = run(
            &format!("aid1-{defect}"),
            &[
                "--domain",
                "svc.authmd.test",
                "--variant",
                "aid1",
                "--defect",
                defect,
                "--case",
                "proof/*",
            ],
        );
        assert_eq!(verdict(&report, case), "FAIL", "{defect}: {:#}", report["header"]["preflight"]);
    }
}

#[test]
fn a_zone_migrating_from_aid1_to_aid2_selects_aid2_and_runs_everything() {
    let (code, report) = run("migration", &["--domain", "svc.authmd.test", "--variant", "aid-migration"]);
    let preflight = &report["header"]["preflight"];
    let answers = preflight["answers"].as_array().map(Vec::len).unwrap_or_default();
    assert_eq!(answers, 2, "{preflight:#}");
    assert_eq!(preflight["selected"]["version"], "aid2");
    assert_eq!(preflight["proof"], "verified");
    assert_eq!(preflight["domain_bound"], true);
    assert!(preflight["warnings"].to_string().contains("aid2 selected over 1"), "{preflight:#}");
    assert_eq!(verdict(&report, "record/aid-02-single-record"), "PASS");
    assert!(auth_md_verdicts(&report).iter().filter(|v| *v == "PASS").count() > 100);
    assert_eq!(code, 0);
}

/// AID v2.1 domain binding: the default deployment binds the queried domain; an AID v2.0
/// endpoint answers unbound, which the harness accepts and reports.
#[test]
fn domain_binding_is_asked_for_and_reported() {
    let (code, bound) = run("bound", &["--domain", "svc.authmd.test", "--case", "proof/*"]);
    assert_eq!(bound["header"]["preflight"]["domain_bound"], true);
    assert_eq!(verdict(&bound, "proof/pka-09-unserved-domain"), "PASS");
    assert_eq!(code, 0);
    let (code, unbound) = run(
        "unbound",
        &["--domain", "svc.authmd.test", "--variant", "aid-v2.0", "--case", "proof/*"],
    );
    assert_eq!(unbound["header"]["preflight"]["domain_bound"], false);
    assert_eq!(verdict(&unbound, "proof/pka-09-unserved-domain"), "PASS");
    assert_eq!(code, 0);
    let (code, any) = run(
        "binds-any",
        &[
            "--domain",
            "svc.authmd.test",
            "--defect",
            "pka-binds-any-domain",
            "--case",
            "proof/*",
        ],
    );
    assert_eq!(verdict(&any, "proof/pka-09-unserved-domain"), "FAIL");
    assert_eq!(code, 1);
}

#[test]
fn a_failed_proof_withholds_identity_material() {
    let (code, report) = run("wrong-key", &["--domain", "svc.authmd.test", "--defect", "pka-wrong-key"]);
    assert!(
        report["header"]["preflight"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("did not prove")
    );
    assert_eq!(verdict(&report, "proof/pka-05-dns-key"), "FAIL");
    // No auth.md case ran: each is SKIP, naming the preflight.
    let verdicts = auth_md_verdicts(&report);
    assert!(!verdicts.is_empty() && verdicts.iter().all(|v| v == "SKIP"), "{verdicts:?}");
    let skipped = report["cases"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["area"] == "idjag"))
        .expect("an idjag case");
    assert!(skipped["reason"].as_str().unwrap_or_default().contains("no identity material"));
    assert_eq!(code, 1);
}

/// A zone for `hostile.test` whose `_agent` name holds `txt`.
async fn hostile(txt: Vec<Vec<u8>>) -> DnsServer {
    let mut zone = Zone::new("test").expect("zone");
    zone.txt("_agent.hostile.test", 300, txt).expect("txt");
    zone.address("hostile.test", 300, [127, 0, 0, 1].into()).expect("address");
    DnsServer::start(zone, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("dns")
}

fn chunks(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.chunks(255).map(<[u8]>::to_vec).collect()
}

#[test]
fn bad_records_end_in_verdicts_and_reports() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let base = "v=aid2;p=openapi;u=https://hostile.test/api";
    let oversized = format!("{base};s={}", "x".repeat(8000));
    let mut non_utf8 = format!("{base};s=").into_bytes();
    non_utf8.extend([0xff, 0xfe, 0x80]);
    let wrong_key = format!("{base};k=A{}", "A".repeat(43));
    // (name, TXT data, what the preflight says, the case that fails on it)
    type Hostile<'a> = (&'a str, Vec<Vec<u8>>, &'a str, Option<&'a str>);
    let cases: Vec<Hostile> = vec![
        ("oversized", chunks(oversized.as_bytes()), "60 bytes", Some("record/aid-01-grammar")),
        ("non-utf8", chunks(&non_utf8), "UTF-8", Some("record/aid-01-grammar")),
        (
            "duplicate-keys",
            chunks(format!("{base};version=aid2").as_bytes()),
            "twice",
            Some("record/aid-01-grammar"),
        ),
        (
            "unknown-version",
            chunks(b"v=aid9;p=openapi;u=https://hostile.test/api"),
            "unknown version",
            Some("record/aid-01-grammar"),
        ),
        (
            "wrong-key-type",
            chunks(wrong_key.as_bytes()),
            "32",
            Some("record/aid-04-ed25519-key"),
        ),
        (
            "aid2-kid",
            chunks(format!("{base};i=g1").as_bytes()),
            "`kid`/`i`",
            Some("record/aid-09-aid2-no-kid"),
        ),
        (
            "upper-case-proto",
            chunks(b"v=aid2;p=OPENAPI;u=https://hostile.test/api"),
            "not a protocol registry token",
            Some("record/aid-10-proto-token"),
        ),
        (
            "empty-key",
            chunks(format!("{base};=foo").as_bytes()),
            "has no key",
            Some("record/aid-01-grammar"),
        ),
        (
            "upper-case-scheme",
            chunks(b"v=aid2;p=openapi;u=HTTPS://hostile.test/api"),
            "https://",
            Some("record/aid-03-https-endpoint"),
        ),
        (
            "dep-not-utc",
            chunks(format!("{base};e=2099-01-01T00:00:00+01:00").as_bytes()),
            "ISO 8601",
            Some("record/aid-11-metadata"),
        ),
        // Valid records a client still stops at: a protocol the handoff cannot start from, and a
        // `dep` in the past (v2.0 §2.3 steps 8 and 6 of v1.2's): no case fails, nothing is sent.
        (
            "websocket",
            chunks(b"v=aid2;p=websocket;u=wss://hostile.test/session"),
            "ERR_UNSUPPORTED_PROTO",
            None,
        ),
        (
            "deprecated",
            chunks(format!("{base};e=2020-01-01T00:00:00Z").as_bytes()),
            "deprecated since",
            None,
        ),
    ];
    for (name, txt, why, failing) in cases {
        let server = runtime.block_on(hostile(txt));
        let resolver = server.addr().to_string();
        // The record cases and some auth.md ones (the endpoint named does not exist, so the
        // handoff and proof cases would only be INCONCLUSIVE).
        let (code, report) = run(
            name,
            &[
                "--domain",
                "hostile.test",
                "--resolver",
                &resolver,
                "--case",
                "record/*",
                "--case",
                "idjag/*",
            ],
        );
        let preflight = &report["header"]["preflight"];
        let said = format!("{} {}", preflight["invalid"], preflight["error"]);
        assert!(said.contains(why), "{name}: the preflight does not say `{why}`: {preflight:#}");
        assert!(preflight["error"].is_string(), "{name}: {preflight:#}");
        match failing {
            Some(case) => {
                assert_eq!(verdict(&report, case), "FAIL", "{name}");
                assert_eq!(code, 1, "{name}");
            }
            None => assert_eq!(code, 0, "{name}: {said}"),
        }
        assert!(auth_md_verdicts(&report).iter().all(|v| v == "SKIP"), "{name}");
        drop(server);
    }
}

#[test]
fn a_dns_server_that_never_answers_is_inconclusive() {
    // Bound and never read: every query times out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let resolver = silent.local_addr().expect("addr").to_string();
    let (code, report) = run(
        "timeout",
        &["--domain", "hostile.test", "--resolver", &resolver, "--case", "record/*"],
    );
    assert!(
        report["header"]["preflight"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("DNS lookup failed")
    );
    assert!(verdict(&report, "record/aid-01-grammar").starts_with("INCONCLUSIVE"));
    assert_eq!(code, 3);
}

#[test]
fn dns_serve_serves_a_zone_file_and_refuses_a_broken_one() {
    let dir = common::scratch("aid-dns-serve");
    let broken = dir.join("broken.zone");
    std::fs::write(&broken, "@ IN TXT\n").expect("zone");
    let out = common::cli(&[
        "dns",
        "serve",
        "--zone",
        &broken.to_string_lossy(),
        "--origin",
        "x.test",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zone file"));
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/authmd.test.zone");
    let zone = Zone::parse(&std::fs::read_to_string(example).expect("example zone"), None).expect("the example zone parses");
    assert_eq!(zone.origin(), "authmd.test");
}

/// A DNS server that answers every query with `rcode` (SERVFAIL is 2, REFUSED 5).
fn answering(rcode: u8) -> (String, std::thread::JoinHandle<()>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    socket.set_read_timeout(Some(std::time::Duration::from_secs(60))).expect("timeout");
    let addr = socket.local_addr().expect("addr").to_string();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut answer = buf[..n].to_vec();
            answer[2] |= 0x80; // a response
            answer[3] = (answer[3] & 0xf0) | rcode;
            let _ = socket.send_to(&answer, peer);
        }
    });
    (addr, thread)
}

#[test]
fn servfail_and_refused_are_inconclusive_not_a_missing_record() {
    for (name, rcode) in [("servfail", 2), ("refused", 5)] {
        let (resolver, _thread) = answering(rcode);
        let (code, report) = run(name, &["--domain", "hostile.test", "--resolver", &resolver, "--case", "record/*"]);
        let preflight = &report["header"]["preflight"];
        let error = preflight["error"].as_str().unwrap_or_default();
        assert!(error.contains("no usable answer"), "{name}: {preflight:#}");
        assert!(!error.contains("no AID record"), "{name}: {error}");
        assert!(verdict(&report, "record/aid-01-grammar").starts_with("INCONCLUSIVE"), "{name}");
        assert_eq!(code, 3, "{name}");
    }
}

#[test]
fn a_record_naming_an_endpoint_outside_the_host_policy_is_never_fetched() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // Another loopback service, which a hostile record points the preflight at.
    let bystander = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    bystander.set_nonblocking(true).expect("nonblocking");
    let port = bystander.local_addr().expect("addr").port();
    let records = [
        ("ip-literal", format!("https://127.0.0.1:{port}/api"), "IP address"),
        ("link-local", "https://meta.hostile.test/latest".to_string(), "link-local"),
        ("user-part", format!("https://user@hostile.test:{port}/api"), "user part"),
    ];
    for (name, uri, why) in records {
        let server = runtime.block_on(async {
            let mut zone = Zone::new("test").expect("zone");
            zone.txt("_agent.hostile.test", 300, chunks(format!("v=aid2;p=openapi;u={uri}").as_bytes()))
                .expect("txt");
            zone.address("hostile.test", 300, [127, 0, 0, 1].into()).expect("address");
            zone.address("meta.hostile.test", 300, [169, 254, 169, 254].into())
                .expect("address");
            DnsServer::start(zone, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("dns")
        });
        let resolver = server.addr().to_string();
        let (_code, report) = run(name, &["--domain", "hostile.test", "--resolver", &resolver]);
        let error = report["header"]["preflight"]["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains("was not fetched") && error.contains(why), "{name}: {error}");
        assert!(auth_md_verdicts(&report).iter().all(|v| v == "SKIP"), "{name}");
        assert!(
            matches!(bystander.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{name}: the preflight connected to the bystander"
        );
        drop(server);
    }
}
