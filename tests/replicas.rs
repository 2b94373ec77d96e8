//! A settling step against replicas: a revocation that reaches the other replicas late passes
//! within the propagation bound the target declares, and fails past it, the finding naming how
//! long the harness waited. The late replicas are the bundled `replicas` deployment under the
//! credential-cache-per-instance defect (each instance trusts what it accepted for 1 to 2 s).

mod common;

use authmd_conformance::bundled::Shape;
use authmd_conformance::deployment::Deployment;
use authmd_conformance::engine::Verdict;
use authmd_reference_server::Defect;

async fn verdict_with_bound(ms: u64) -> authmd_conformance::engine::CaseResult {
    let deployment = Deployment::named("replicas").expect("the replicas deployment");
    let (harness, _stack) = authmd_conformance::bundled_harness_configured(
        [Defect::CredentialCachePerInstance].into_iter().collect(),
        Shape::Full,
        deployment,
        None,
        Default::default(),
        authmd_conformance::bundled::AID_DOMAIN,
        |target| {
            if let Some(r) = target.replicas.as_mut() {
                r.revocation_propagation_ms = ms;
            }
        },
    )
    .await
    .expect("bundled replicas");
    let cases = common::cases(&["replica-04-revocation-seen-by-every-replica"]);
    let report = authmd_conformance::run(harness, cases, &|_, _, _| {}).await;
    report.cases.into_iter().next().expect("one case")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_revocation_passes_within_the_declared_bound_and_fails_past_it() {
    let (within, past) = tokio::join!(verdict_with_bound(5_000), verdict_with_bound(200));
    assert_eq!(within.verdict, Verdict::Pass, "{:?}", within.findings);
    assert_eq!(past.verdict, Verdict::Fail, "{:?}", past.findings);
    let finding = past.findings.first().expect("a finding");
    assert!(
        finding.found.contains("the bound is 200 ms, [replicas].revocation_propagation_ms"),
        "{}",
        finding.found
    );
}
