//! The expectation and verdict logic against fake targets served by wiremock: a target that
//! answers 500, the wrong content type, a body that is not JSON, or a 401 without its header.
//! Each answer is evidence (a FAIL with a finding), never a harness error; only a target that
//! does not answer at all is one.

use std::sync::Arc;

mod common;

use authmd_conformance::engine::{CaseResult, FindingKind, Harness, HarnessError, Parts, SkipReason, Verdict};
use authmd_conformance::target::{Oracle, TargetConfig};
use authmd_mock_idp::{IdpConfig, MockIdp};
use common::cases;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn target(base: &str) -> TargetConfig {
    let mut target = TargetConfig::new(base);
    target.oracle = Some(Oracle {
        path: "/api/resource".into(),
        user_pointer: "/user/id".into(),
        scopes_pointer: "/credential/scope".into(),
    });
    target
}

async fn harness(base: &str) -> Result<Arc<Harness>, HarnessError> {
    let idp = MockIdp::start(IdpConfig::default()).await.expect("mock IdP");
    Harness::build(Parts::new(target(base), Arc::new(idp))).await.map(Arc::new)
}

async fn run(server: &MockServer, ids: &[&str]) -> Vec<CaseResult> {
    let harness = harness(&server.uri()).await.expect("the fake target answers");
    authmd_conformance::run(harness, cases(ids), &|_, _, _| {}).await.cases
}

fn result<'a>(results: &'a [CaseResult], id: &str) -> &'a CaseResult {
    results.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("no result for {id}"))
}

/// Serves discovery documents that are valid, so later failures are the endpoint's own.
async fn with_discovery(server: &MockServer) {
    let base = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-protected-resource"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "resource": format!("{base}/api"),
            "authorization_servers": [base],
            "scopes_supported": ["api.read", "api.write"],
            "bearer_methods_supported": ["header"],
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": base,
            "resource": format!("{base}/api"),
            "authorization_servers": [base],
            "scopes_supported": ["api.read", "api.write"],
            "bearer_methods_supported": ["header"],
            "agent_auth": {
                "skill": format!("{base}/auth.md"),
                "register_uri": format!("{base}/agent/auth"),
                "claim_uri": format!("{base}/agent/auth/claim"),
                "identity_types_supported": ["anonymous"],
                "anonymous": { "credential_types_supported": ["api_key"] },
            },
        })))
        .mount(server)
        .await;
}

/// A target with valid discovery whose `verb path` answers `response`.
async fn target_answering(verb: &str, at: &str, response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    with_discovery(&server).await;
    Mock::given(method(verb)).and(path(at)).respond_with(response).mount(&server).await;
    server
}

/// Runs one case against `server`.
async fn run_one(server: &MockServer, id: &str) -> CaseResult {
    run(server, &[id]).await.remove(0)
}

#[tokio::test]
async fn a_target_answering_500_fails_discovery_cases_and_blocks_the_rest() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&server)
        .await;
    let results = run(&server, &["disc-05-prm-document", "reg-anon-01-response-shape"]).await;

    let prm = result(&results, "disc-05-prm-document");
    assert_eq!(prm.verdict, Verdict::Fail);
    assert_eq!(prm.findings[0].kind, FindingKind::UnexpectedStatus);
    assert!(prm.findings[0].found.starts_with("500"), "{}", prm.findings[0].found);
    // Discovery failed, so a registration case is blocked, not failed and not inconclusive.
    match &result(&results, "reg-anon-01-response-shape").verdict {
        Verdict::Skip(reason @ SkipReason::Blocked(text)) => assert!(text.starts_with("blocked: discovery failed"), "{reason}"),
        other => panic!("expected a blocked skip, got {other:?}"),
    }
}

#[tokio::test]
async fn metadata_served_as_html_is_a_finding_about_the_target() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-protected-resource"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("<html>PRM</html>", "text/html"))
        .mount(&server)
        .await;
    let prm = run_one(&server, "disc-05-prm-document").await;
    assert_eq!(prm.verdict, Verdict::Fail);
    assert!(
        prm.findings
            .iter()
            .any(|f| f.kind == FindingKind::NotAbsoluteUrl || f.kind == FindingKind::MissingMember),
        "{:?}",
        prm.findings
    );
    // The exchange is recorded as evidence, body included.
    assert!(prm.exchanges.iter().any(|e| e.response_body.contains("<html>PRM</html>")));
}

#[tokio::test]
async fn a_401_without_www_authenticate_fails_the_challenge_case() {
    let response = ResponseTemplate::new(401).set_body_json(json!({ "error": "unauthorized" }));
    let server = target_answering("GET", "/api/resource", response).await;
    let challenge = run_one(&server, "disc-01-challenge-without-credentials").await;
    assert_eq!(challenge.verdict, Verdict::Fail);
    assert!(
        challenge.findings.iter().all(|f| f.kind == FindingKind::BadChallenge),
        "{:?}",
        challenge.findings
    );
    assert!(!challenge.findings.is_empty());
}

#[tokio::test]
async fn a_registration_answering_plain_text_fails_with_missing_members() {
    let response = ResponseTemplate::new(200).set_body_raw("registered!", "text/plain");
    let server = target_answering("POST", "/agent/auth", response).await;
    let reg = run_one(&server, "reg-anon-01-response-shape").await;
    assert_eq!(reg.verdict, Verdict::Fail);
    let kinds: Vec<FindingKind> = reg.findings.iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&FindingKind::MissingMember), "{kinds:?}");
    // Status 200 was right; only the body is wrong.
    assert!(!kinds.contains(&FindingKind::UnexpectedStatus), "{kinds:?}");
}

#[tokio::test]
async fn an_error_with_the_wrong_code_names_both_codes() {
    let response = ResponseTemplate::new(400).set_body_json(json!({ "error": "bad_request" }));
    let server = target_answering("POST", "/agent/auth", response).await;
    let case = run_one(&server, "reg-anon-05-unsupported-credential-type").await;
    assert_eq!(case.verdict, Verdict::Fail);
    let finding = case
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::UnexpectedErrorCode)
        .expect("an error-code finding");
    assert!(finding.expected.contains("unsupported_credential_type"), "{}", finding.expected);
    assert!(finding.found.contains("bad_request"), "{}", finding.found);
}

#[tokio::test]
async fn a_target_that_does_not_answer_is_inconclusive_with_a_report() {
    // Bind and drop a listener: the port is closed, so nothing answers. Discovery records the
    // failed hop and every case that needs it is INCONCLUSIVE (exit 3), never a FAIL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let harness = harness(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a harness, even without a target");
    let error = harness.discovery.error.clone().unwrap_or_default();
    assert!(error.contains("no answer") && error.contains(&port.to_string()), "{error}");
    assert!(harness.discovery_exchanges.iter().all(|e| e.status.is_none() && e.error.is_some()));
    let report = authmd_conformance::run(harness, cases(&["reg-anon-01-response-shape"]), &|_, _, _| {}).await;
    assert!(
        matches!(report.cases[0].verdict, Verdict::Inconclusive(_)),
        "{:?}",
        report.cases[0].verdict
    );
    assert_eq!(report.inconclusive(), 1);
}

#[tokio::test]
async fn a_url_template_mail_source_gets_the_cases_registration_id() {
    // A target that files claim mail by registration, as `/mail/<registration_id>.html`
    // (the v0.1 sample's outbox), with no recipient in it: the source must be asked for the
    // registration the case made, never for `/mail/.html`.
    let server = MockServer::start().await;
    with_discovery(&server).await;
    let base = server.uri();
    Mock::given(method("POST"))
        .and(path("/agent/auth"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "registration_id": "reg_u1",
            "registration_type": "anonymous",
            "credential": "sk_fake_0123456789abcdef",
            "credential_type": "api_key",
            "claim_token": "clm_fake_0123456789",
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/agent/auth/claim"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "registration_id": "reg_u1", "status": "initiated" })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/mail/reg_u1.html"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(format!("<a href=\"{base}/claim/view?token=cvt_fake_1\">Claim</a>"), "text/html"),
        )
        .mount(&server)
        .await;
    let idp = MockIdp::start(IdpConfig::default()).await.expect("mock IdP");
    let mail = authmd_mock_mailbox::MailSource::url_template(format!("{base}/mail/{{registration_id}}.html"));
    let harness = Harness::build(Parts::new(target(&base), Arc::new(idp)).mail(Arc::new(mail)))
        .await
        .expect("harness");
    let report = authmd_conformance::run(Arc::new(harness), cases(&["claim-06-same-email-idempotent"]), &|_, _, _| {}).await;
    let case = &report.cases[0];
    assert_eq!(case.verdict, Verdict::Pass, "{:?}", case.findings);
    assert_eq!(case.mail.len(), 1);
    let asked: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.url.path().to_string())
        .filter(|p| p.starts_with("/mail/"))
        .collect();
    assert!(asked.iter().all(|p| p == "/mail/reg_u1.html"), "{asked:?}");
}

#[tokio::test]
async fn a_relative_resource_metadata_is_never_fetched_and_discovery_falls_back() {
    // RFC 9728 wants an absolute URL; a relative one is the target's fault (a DISC finding),
    // never a harness error: the harness does not fetch it and tries the conventional path.
    let server = MockServer::start().await;
    with_discovery(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/resource"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "www-authenticate",
            r#"Bearer resource_metadata="/.well-known/oauth-protected-resource""#,
        ))
        .mount(&server)
        .await;
    let harness = harness(&server.uri()).await.expect("harness");
    assert_eq!(harness.discovery.error, None, "discovery should fall back to the conventional path");
    let refused = harness
        .discovery_exchanges
        .iter()
        .find(|e| e.blocked)
        .expect("the relative URL is recorded, not fetched");
    assert!(
        refused.error.as_deref().is_some_and(|e| e.contains("not an absolute URL")),
        "{refused:?}"
    );
    let results = authmd_conformance::run(harness, cases(&["disc-01-challenge-without-credentials"]), &|_, _, _| {}).await;
    assert_eq!(results.cases[0].verdict, Verdict::Fail, "{:?}", results.cases[0].findings);
}

/// A target whose AS metadata is `metadata` (and a PRM pointing at it).
async fn target_with_metadata(metadata: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    let base = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-protected-resource"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "resource": format!("{base}/api"), "authorization_servers": [base] })),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(metadata))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_later_auth_md_is_never_judged_as_v01() {
    // v0.6 metadata (identity_endpoint, token_endpoint): the v0.1 cases skip saying so, rather
    // than fail the target for not being v0.1, or pass it by accident.
    let server = target_with_metadata(json!({
        "issuer": "x",
        "token_endpoint": "http://127.0.0.1:1/oauth2/token",
        "agent_auth": { "identity_endpoint": "http://127.0.0.1:1/agent/identity", "events_endpoint": "http://127.0.0.1:1/agent/event/notify", "identity_types_supported": ["anonymous"] }
    }))
    .await;
    let harness = harness(&server.uri()).await.expect("harness");
    assert_eq!(harness.discovery.spoken.as_ref().map(|s| s.speaks.as_str()), Some("later"));
    let report = authmd_conformance::run(harness, cases(&["reg-anon-01-response-shape"]), &|_, _, _| {}).await;
    match &report.cases[0].verdict {
        Verdict::Skip(reason @ SkipReason::Blocked(text)) => assert!(text.contains("later auth.md"), "{reason}"),
        other => panic!("expected a skip naming the later version, got {other:?}"),
    }
    assert_eq!(report.header.spoken.map(|s| s.speaks), Some("later".to_string()));
}

#[tokio::test]
async fn metadata_mixing_versions_is_reported() {
    let server = target_with_metadata(json!({
        "issuer": "x",
        "token_endpoint": "http://127.0.0.1:1/oauth2/token",
        "agent_auth": { "register_uri": "http://127.0.0.1:1/agent/auth", "identity_endpoint": "http://127.0.0.1:1/agent/identity" }
    }))
    .await;
    let harness = harness(&server.uri()).await.expect("harness");
    let spoken = harness.discovery.spoken.clone().expect("judged");
    assert_eq!(spoken.speaks, "mixed");
    assert_eq!(spoken.own, vec!["agent_auth.register_uri"]);
    assert!(spoken.later.contains(&"token_endpoint".to_string()));
}

/// A 429 to a step that is not about rate limits is the target throttling the harness: with a
/// long `Retry-After` the case is INCONCLUSIVE naming the limit (not a FAIL, and not a pass of
/// a `4xx` expectation); with a short one the step runs again and its answer decides.
#[tokio::test]
async fn a_rate_limited_step_is_retried_or_inconclusive_never_a_verdict() {
    let id = "reg-anon-05-unsupported-credential-type";
    let limited = target_answering(
        "POST",
        "/agent/auth",
        ResponseTemplate::new(429)
            .insert_header("retry-after", "3600")
            .set_body_json(json!({"error": "rate_limited"})),
    )
    .await;
    let result = run_one(&limited, id).await;
    match &result.verdict {
        Verdict::Inconclusive(why) => assert!(why.contains("rate-limited") && why.contains("3600"), "{why}"),
        other => panic!("{other:?}"),
    }

    let briefly = MockServer::start().await;
    with_discovery(&briefly).await;
    Mock::given(method("POST"))
        .and(path("/agent/auth"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&briefly)
        .await;
    Mock::given(method("POST"))
        .and(path("/agent/auth"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "unsupported_credential_type"})))
        .mount(&briefly)
        .await;
    let result = run_one(&briefly, id).await;
    assert_eq!(result.verdict, Verdict::Pass, "{:?}", result.findings);
    let statuses: Vec<_> = result.exchanges.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [Some(429), Some(400)], "the throttled answer stays as evidence");
}
