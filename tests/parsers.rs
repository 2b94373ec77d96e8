//! Property tests: nothing a target sends may panic a parser of target data. Each parser gets
//! arbitrary strings and bytes, plus near-valid inputs built from its own grammar, and must
//! return (a value or an error) without panicking.

use authmd_conformance::compare::ReportFile;
use authmd_conformance::engine::{decode_jwt, parse_challenge};
use authmd_conformance::redact::{Secrets, inert};
use authmd_conformance::template;
use authmd_mock_mailbox::{Message, extract_claim_link, extract_otp_text};
use base64::Engine;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn www_authenticate_never_panics(header in ".{0,200}") {
        let _ = parse_challenge(&header);
    }

    #[test]
    fn www_authenticate_near_grammar(
        scheme in "[A-Za-z]{0,8}",
        params in proptest::collection::vec(("[a-z_]{0,10}", "[^\"]{0,20}", any::<bool>()), 0..6),
        noise in "[ ,=\"\\\\]{0,6}",
    ) {
        let mut header = scheme.clone();
        for (k, v, quoted) in &params {
            header += &if *quoted { format!(" {k}=\"{v}\",") } else { format!(" {k}={v},") };
        }
        header += &noise;
        let (parsed_scheme, parsed) = parse_challenge(&header);
        prop_assert_eq!(parsed_scheme.is_empty(), header.trim().is_empty() || header.trim().starts_with(' '));
        prop_assert!(parsed.len() <= params.len() + 3);
    }

    #[test]
    fn templates_never_panic(text in ".{0,80}", key in "[a-z.0-9]{0,12}") {
        let vars: Map<String, Value> = json!({ "a": { "b": [1, "x"] }, "s": "é" }).as_object().cloned().unwrap_or_default();
        let _ = template::resolve(&vars, &Value::String(text.clone()));
        let _ = template::resolve(&vars, &Value::String(format!("{{{{{key}}}}}{text}{{{{")));
        let _ = template::lookup(&vars, &key);
    }

    #[test]
    fn jwt_display_never_panics(a in proptest::collection::vec(any::<u8>(), 0..64), b in proptest::collection::vec(any::<u8>(), 0..64), raw in ".{0,120}") {
        let _ = decode_jwt(&raw);
        let _ = decode_jwt(&format!("{}.{}.sig", b64(&a), b64(&b)));
        let header = format!("{{\"alg\":{}}}", String::from_utf8_lossy(&a));
        let _ = decode_jwt(&format!("{}.{}.x", b64(header.as_bytes()), b64(&b)));
    }

    #[test]
    fn mail_parsing_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..400), pattern in proptest::option::of("[a-z()\\[\\]+*.?]{0,10}")) {
        let message = Message::parse(String::new(), vec!["a@example.com".into()], &raw);
        let _ = extract_claim_link(&message, pattern.as_deref());
        let _ = extract_otp_text(&message);
    }

    #[test]
    fn mail_near_grammar(subject in ".{0,40}", body in ".{0,200}", token in "[A-Za-z0-9_-]{0,40}") {
        let raw = format!("From: s@x\r\nTo: a@example.com\r\nSubject: {subject}\r\nContent-Type: text/html\r\n\r\n<a href=\"http://127.0.0.1/claim?claim_attempt_token={token}\">{body}</a>");
        let message = Message::parse(String::new(), vec![], raw.as_bytes());
        let _ = extract_claim_link(&message, None);
    }

    #[test]
    fn report_reading_never_panics(text in ".{0,300}") {
        let _ = ReportFile::parse("fuzz", &text);
    }

    #[test]
    fn report_reading_near_grammar(version in 0u64..3, total in 0usize..3, cases in proptest::collection::vec(("[a-z/]{0,10}", "[A-Z]{0,6}"), 0..3), extra in ".{0,20}") {
        let cases: Vec<Value> = cases.iter().map(|(n, v)| json!({ "name": n, "verdict": v })).collect();
        let text = json!({ "header": { "schema_version": version, "suite_version": extra, "profile": "v0.1", "target": "t", "started_at": "", "prm": null, "metadata": null, "discovery_error": null, "readings": {}, "config_hash": "" }, "cases": cases, "footer": { "total": total, "counts": {}, "duration_ms": 1 } }).to_string();
        let _ = ReportFile::parse("fuzz", &text);
        let _ = ReportFile::parse("fuzz", &text[..text.len() / 2]);
    }

    #[test]
    fn redaction_and_inert_never_panic_and_redact(secret in "[^\\s]{4,30}", text in ".{0,100}") {
        let secrets = Secrets::default();
        secrets.add(&secret);
        secrets.harvest_json(&json!({ "credential": { "value": text.clone() }, "x": [secret.clone()] }));
        let mixed = format!("{text}{secret}{text}");
        let out = secrets.redact(&mixed);
        prop_assert!(secrets.leaks(&out).is_empty());
        let mut value = json!({ "body": mixed, "list": [secret.clone()] });
        secrets.redact_value(&mut value);
        prop_assert!(secrets.leaks(&serde_json::to_string(&value).unwrap_or_default()).is_empty());
        let clean = inert(&text, false);
        prop_assert!(!clean.chars().any(char::is_control));
    }
}
