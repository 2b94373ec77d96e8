//! A target without a clock header: TTL cases wait for the declared TTL within
//! `clock.wait_budget_secs`, and are skipped with the reason when the wait would exceed it.
//! The reference server runs with a one-second registration TTL and no test clock, so the
//! waiting case really waits (about six seconds: the TTL plus the case's five-second margin).

use std::net::SocketAddr;
use std::sync::Arc;

use authmd_conformance::default_catalogue;
use authmd_conformance::engine::{Harness, Parts, SkipReason, Verdict};
use authmd_conformance::target::{ClockConfig, Oracle, TargetConfig};
use authmd_mock_idp::{IdpConfig, MockIdp};
use authmd_reference_server::{Config, Defects, ReferenceServer};

async fn verdict_with_budget(budget: u64, dir: &std::path::Path) -> Verdict {
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database: dir.join(format!("budget-{budget}.sqlite")),
        ..Config::default()
    };
    config.ttl.registration = 1;
    let server = ReferenceServer::start(config, Defects::none()).await.expect("reference server");
    let mut target = TargetConfig::new(server.base_url());
    target.oracle = Some(Oracle {
        path: "/api/resource".into(),
        user_pointer: "/user/id".into(),
        scopes_pointer: "/credential/scope".into(),
    });
    target.ttl.registration = 1;
    target.clock = ClockConfig {
        offset_header: None,
        wait_budget_secs: budget,
    };
    let idp = MockIdp::start(IdpConfig::default()).await.expect("mock IdP");
    let harness = Harness::build(Parts::new(target, Arc::new(idp))).await.expect("discovery");
    let case = default_catalogue()
        .expect("catalogue")
        .cases
        .into_iter()
        .find(|c| c.id == "claim-09-expired-registration")
        .expect("case");
    let report = authmd_conformance::run(Arc::new(harness), vec![case], &|_, _, _| {}).await;
    report.cases[0].verdict.clone()
}

#[tokio::test]
async fn ttl_cases_wait_within_the_budget_and_skip_beyond_it() {
    let dir = std::env::temp_dir().join(format!("authmd-wait-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (beyond, within) = tokio::join!(verdict_with_budget(3, &dir), verdict_with_budget(30, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    match beyond {
        Verdict::Skip(SkipReason::Needs { setting, text }) => {
            assert_eq!(setting, "clock.wait_budget_secs");
            assert!(
                text.contains("clock.wait_budget_secs of at least") && text.contains("(now 3)"),
                "{text}"
            );
        }
        other => panic!("expected a skip beyond the budget, got {other:?}"),
    }
    assert_eq!(within, Verdict::Pass);
}
