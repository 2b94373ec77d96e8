//! The mock IdP leaks no state into later cases or runs: a case that rotates keys restores the
//! published set, and keys persist in a state directory, so a server that cached the JWKS of
//! one run accepts the tokens of the next.

use std::sync::Arc;

mod common;

use authmd_conformance::engine::{Harness, Parts, Verdict};
use authmd_conformance::target::{Oracle, TargetConfig};
use authmd_mock_idp::{IdpConfig, MockIdp, Subject, TokenKind, TokenRequest};
use authmd_reference_server::{Config, Defects, ReferenceServer, TrustedIssuer};
use common::cases;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("authmd-idp-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

async fn server(issuer: &str, dir: &std::path::Path) -> ReferenceServer {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: dir.join("ref.sqlite"),
        ..Config::default()
    };
    // No refetch cool-down: the rotation case needs the server to refetch right away.
    config.ttl.jwks_refetch_cooldown = 0;
    config.trusted_issuers.push(TrustedIssuer::named(issuer));
    ReferenceServer::start(config, Defects::none()).await.expect("reference server")
}

fn target(base: &str, issuer: &str) -> TargetConfig {
    let mut target = TargetConfig::new(base);
    target.oracle = Some(Oracle {
        path: "/api/resource".into(),
        user_pointer: "/user/id".into(),
        scopes_pointer: "/credential/scope".into(),
    });
    target.idp.issuer = Some(issuer.to_string());
    target.idp.jwks_refetch_cooldown_secs = Some(0);
    target
}

async fn run_once(base: &str, issuer: &str, port: u16, keys: Option<std::path::PathBuf>, ids: &[&str]) -> Vec<Verdict> {
    // The previous run's IdP releases the port asynchronously after it is dropped.
    let mut attempts = 0;
    let idp = loop {
        let started = MockIdp::start(IdpConfig {
            listen: format!("127.0.0.1:{port}").parse().expect("addr"),
            issuer: Some(issuer.to_string()),
            key_dir: keys.clone(),
            ..IdpConfig::default()
        })
        .await;
        match started {
            Ok(idp) => break idp,
            Err(e) if attempts < 100 => {
                attempts += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("mock IdP: {e}"),
        }
    };
    let harness = Harness::build(Parts::new(target(base, issuer), Arc::new(idp)))
        .await
        .expect("harness");
    let report = authmd_conformance::run(Arc::new(harness), cases(ids), &|_, _, _| {}).await;
    report.cases.into_iter().map(|c| c.verdict).collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test]
async fn a_rerun_signs_with_the_keys_the_server_cached() {
    let dir = scratch("rerun");
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let server = server(&issuer, &dir).await;
    let keys = dir.join("keys");
    let first = run_once(
        server.base_url(),
        &issuer,
        port,
        Some(keys.clone()),
        &["idjag-01-access-token", "idjag-06-key-rotation"],
    )
    .await;
    assert!(first.iter().all(|v| *v == Verdict::Pass), "first run: {first:?}");
    // The server keeps the first run's JWKS cached (10-minute floor); the second run's IdP
    // must sign with the same keys.
    let second = run_once(
        server.base_url(),
        &issuer,
        port,
        Some(keys),
        &["idjag-01-access-token", "idjag-28-replayed-token"],
    )
    .await;
    assert!(second.iter().all(|v| *v == Verdict::Pass), "second run: {second:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn without_persisted_keys_the_rerun_would_be_refused() {
    // The control for the test above: fresh keys under the same kid are rejected by a server
    // that cached the old ones, which is exactly the false FAIL that persistence prevents.
    let dir = scratch("fresh");
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let server = server(&issuer, &dir).await;
    let first = run_once(server.base_url(), &issuer, port, None, &["idjag-01-access-token"]).await;
    assert_eq!(first, vec![Verdict::Pass]);
    let second = run_once(server.base_url(), &issuer, port, None, &["idjag-01-access-token"]).await;
    assert_eq!(second, vec![Verdict::Fail], "a fresh key under a cached kid should be refused");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_rotation_case_restores_the_published_keys() {
    let stack = authmd_conformance::bundled::start(Defects::none()).await.expect("stack");
    let idp = stack.idp.clone();
    let before = idp.kids();
    let harness = Harness::build(Parts::new(stack.target.clone(), idp.clone()).mail(stack.mail.clone()))
        .await
        .expect("harness");
    let report = authmd_conformance::run(
        Arc::new(harness),
        cases(&["idjag-06-key-rotation", "idjag-42-jwks-unavailable"]),
        &|_, _, _| {},
    )
    .await;
    assert!(
        report.cases.iter().all(|c| c.verdict == Verdict::Pass),
        "{:?}",
        report.cases.iter().map(|c| &c.verdict).collect::<Vec<_>>()
    );
    assert_eq!(idp.kids(), before, "the rotated key is still published");
    let minted = idp
        .mint(
            &TokenRequest {
                kind: TokenKind::IdJag,
                ..TokenRequest::default()
            },
            &Subject {
                sub: "s".into(),
                email: "s@example.com".into(),
            },
        )
        .expect("mint");
    let kid = authmd_conformance::engine::decode_jwt(&minted.token).and_then(|t| t["header"]["kid"].as_str().map(str::to_string));
    assert_eq!(
        kid.as_deref(),
        before.last().map(String::as_str),
        "the active signer was not restored"
    );
}
