use super::*;
use serde_json::json;

#[test]
fn redacts_longest_first_and_keeps_the_rest() {
    let s = Secrets::default();
    s.add("abcd");
    s.add("abcdef");
    let out = s.redact("x abcdef y abcd z");
    assert!(!out.contains("abcd"));
    assert!(out.starts_with("x <redacted:"));
    assert!(out.ends_with(" z"));
}

#[test]
fn harvests_nested_members_and_skips_descriptions() {
    let s = Secrets::default();
    s.harvest_json(&json!({
        "credential": {"type": "api_key", "value": "sk_live_nested"},
        "api_key": "ak_top",
        "data": [{"session_token": "st_deep"}],
        "claim_token_expires": "2026-01-01T00:00:00Z",
        "registration_id": "reg_1",
        "session": {"method": "email-verification", "issued_via": "anonymous", "bearer": "Xy7pQ2rT9sLm"},
        "credential_info": {"registration_id": "reg_0123456789abcdef", "sub": "sub-0123456789ABC"},
    }));
    let all = s.all();
    for secret in ["sk_live_nested", "ak_top", "st_deep", "Xy7pQ2rT9sLm"] {
        assert!(all.contains(&secret.to_string()), "{secret} not harvested: {all:?}");
    }
    for not in [
        "api_key",
        "2026-01-01T00:00:00Z",
        "reg_1",
        "email-verification",
        "anonymous",
        "reg_0123456789abcdef",
        "sub-0123456789ABC",
    ] {
        assert!(!all.contains(&not.to_string()), "{not} harvested");
    }
}

#[test]
fn metadata_vocabulary_is_not_a_secret() {
    let s = Secrets::default();
    s.harvest_json(&json!({
        "agent_auth": {
            "identity_types_supported": ["anonymous", "identity_assertion"],
            "identity_assertion": {"assertion_types_supported": ["verified_email"]},
            "credential_types_supported": ["api_key", "access_token"],
            "register_uri": "http://x/agent/register"
        },
        "error": "invalid_token",
        "token_endpoint_auth_methods_supported": ["none"]
    }));
    assert!(s.is_empty(), "{:?}", s.all());
}

#[test]
fn harvests_credential_headers_and_cookies() {
    let s = Secrets::default();
    s.harvest_headers(&[
        ("Set-Cookie".into(), "sid=cookie-secret-1; Path=/; HttpOnly".into()),
        ("X-Api-Key".into(), "hdr-secret-2".into()),
        ("WWW-Authenticate".into(), "Bearer realm=\"x\"".into()),
        ("Content-Type".into(), "application/json".into()),
    ]);
    let all = s.all();
    assert!(all.contains(&"cookie-secret-1".to_string()));
    assert!(all.contains(&"hdr-secret-2".to_string()));
    assert!(!all.iter().any(|a| a.contains("realm")));
}

#[test]
fn escaped_forms_are_redacted_and_scanned() {
    let s = Secrets::default();
    s.add(r#"back\slash"quote&amp|pipe"#);
    let mut v = json!({ "body": r#"{"credential":"back\slash"quote&amp|pipe"}"# });
    s.redact_value(&mut v);
    let text = serde_json::to_string(&v).unwrap();
    assert!(s.leaks(&text).is_empty(), "{text}");
    // The JSON-escaped form in an unredacted serialisation is found by the scan.
    let raw = serde_json::to_string(&json!({ "x": r#"back\slash"quote&amp|pipe"# })).unwrap();
    assert_eq!(s.leaks(&raw).len(), 1);
    assert!(!s.redact(&raw).contains("slash"));
}

#[test]
fn short_secrets_only_where_they_stand_whole() {
    let s = Secrets::default();
    s.add("ab");
    assert_eq!(s.redact("ab").len(), "<redacted:12345678>".len());
    assert_eq!(s.redact("label about"), "label about");
    assert!(!s.redact(r#"{"credential":"ab"}"#).contains("\"ab\""));
}

#[test]
fn low_entropy_secrets_count_only_as_whole_tokens() {
    let s = Secrets::default();
    s.add("123456");
    // Inside unrelated digits (a timestamp, an id) it is neither redacted nor a leak.
    let timestamps = r#"{"iat":1733123456,"id":"reg_0123456789","t":"2026-12-04T12:34:56Z"}"#;
    assert_eq!(s.redact(timestamps), timestamps);
    assert!(s.leaks(timestamps).is_empty(), "{timestamps}");
    // Where it stands whole (a string, a URL or form parameter, a sentence) it is both.
    for text in [r#"{"otp":"123456"}"#, "/claim?otp=123456&x=1", "your code is 123456.", "123456"] {
        assert_eq!(s.leaks(text).len(), 1, "{text}");
        let redacted = s.redact(text);
        assert!(!redacted.contains("123456") && s.leaks(&redacted).is_empty(), "{redacted}");
    }
    // A JSON number equal to it is redacted in a report value.
    let mut v = json!({ "otp": 123456, "iat": 1733123456 });
    s.redact_value(&mut v);
    assert_eq!(v["iat"], json!(1733123456));
    assert!(v["otp"].as_str().is_some_and(|m| m.starts_with("<redacted:")), "{v}");
}

#[test]
fn declared_members_and_secret_parameters_are_harvested() {
    let s = Secrets::default();
    s.declare_names(&["user_code".to_string()]);
    s.harvest_json(&json!({
        "claim": { "user_code": "482913", "verification_uri": "http://x/login?claim_attempt_token=cat_secret_0123456789&next=/" },
        "interval": 5
    }));
    let all = s.all();
    assert!(all.contains(&"482913".to_string()), "{all:?}");
    assert!(all.contains(&"cat_secret_0123456789".to_string()), "{all:?}");
    assert!(!all.iter().any(|a| a == "/"), "{all:?}");
}

#[test]
fn numbers_under_secret_names_are_harvested() {
    let s = Secrets::default();
    s.harvest_json(&json!({ "otp": 654321, "expires_in": 900 }));
    assert_eq!(s.all(), vec!["654321".to_string()]);
}

#[test]
fn a_flood_of_distinct_values_registers_a_bounded_number() {
    let s = Secrets::default();
    let flood: serde_json::Map<String, Value> = (0..1000)
        .map(|i| (format!("token_{i}"), json!(format!("flooded-value-{i:06}"))))
        .collect();
    s.harvest_json(&Value::Object(flood));
    assert_eq!(s.len(), HARVEST_PER_ANSWER);
    assert_eq!(s.skipped(), 1000 - HARVEST_PER_ANSWER);
    // Answer after answer, the run's byte budget holds.
    for answer in 0..200 {
        let big: serde_json::Map<String, Value> = (0..HARVEST_PER_ANSWER)
            .map(|i| (format!("secret_{i}"), json!(format!("{answer:04}-{i:04}-{}", "x".repeat(200)))))
            .collect();
        s.harvest_json(&Value::Object(big));
    }
    let bytes: usize = s.all().iter().map(String::len).sum();
    assert!(bytes <= HARVEST_RUN_BYTES + 64 * 100, "{bytes} bytes of secrets");
    // A value too long to harvest, or past the budget, is still a secret once sent back.
    let late = format!("sent-back-credential-{}", "y".repeat(MAX_HARVESTED_LEN));
    s.harvest_json(&json!({ "credential": late }));
    assert!(!s.all().contains(&late));
    s.harvest_request(
        &[("authorization".into(), format!("Bearer {late}"))],
        Some(r#"{"claim_token":"ct-sent-back-1234"}"#),
    );
    assert!(s.all().contains(&late));
    // What the harness wrote itself, never seen in an answer, is no secret.
    assert!(!s.all().contains(&"ct-sent-back-1234".to_string()));
    // A flooded value past the per-answer budget, sent back, is.
    s.harvest_request(&[], Some(r#"{"token": "flooded-value-000999"}"#));
    assert!(s.all().contains(&"flooded-value-000999".to_string()));
    assert_eq!(s.redact(&format!("x {late} y")).matches("<redacted:").count(), 1);
}

#[test]
fn inert_escapes_terminal_controls() {
    let evil = "ok\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}\r\nPASS";
    let out = inert(evil, false);
    assert!(!out.chars().any(|c| c.is_control()));
    assert!(out.contains("\\u{1b}"));
    assert!(!out.contains('\n'));
    assert!(inert("a\nb", true).contains('\n'));
}
